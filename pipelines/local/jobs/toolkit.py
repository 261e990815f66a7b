"""The sagemaker-training toolkit's side of the contract: hyperparameters and the SM_* environment.

The scikit-learn image runs the entry point through that toolkit; a script written for it reads
`--name value` arguments and SM_* variables, so both are reproduced here as the toolkit builds them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipelines.local.jobs.container import HOST, JobDirs
from pipelines.local.jobs.outcome import JobError

TRAINING_TOOLKIT = "the training toolkit"  # who installs a source directory's packages, in messages
GROUP = "homogeneousCluster"  # the one instance group of a job without InstanceGroups


def resources(instance_type: str) -> dict[str, Any]:
    """resourceconfig.json as SageMaker writes it for a one-instance job."""
    return {
        "current_host": HOST,
        "current_instance_type": instance_type,
        "current_group_name": GROUP,
        "hosts": [HOST],
        "instance_groups": [{"instance_group_name": GROUP, "instance_type": instance_type, "hosts": [HOST]}],
        "network_interface_name": "eth0",
    }


def check_entry_point(program: str) -> None:
    """The toolkit runs a `.py` entry point as a Python script and anything else as a shell
    command; a local job runs only the former (a setup.py beside it is refused with the code
    directory's installs, see requirements.py)."""
    if not program.endswith(".py"):
        raise JobError(
            f"ClientError: sagemaker_program {program!r} is not a .py file, so the training toolkit "
            "would run it as a shell command; the local target runs Python entry points only"
        )


def stored_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """HyperParameters as SageMaker stores them: strings, with non-strings JSON-encoded."""
    return {
        str(name): value if isinstance(value, str) else json.dumps(value)
        for name, value in hyperparameters.items()
    }


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The toolkit's argument list: sorted names, `--name` (`-n` for one-letter names), mappings
    as `k=v,...`, everything else through str(); values are already JSON-decoded."""
    args: list[str] = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        if isinstance(value, Mapping):
            text = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        else:
            text = "" if value is None else str(value)
        args += [f"--{name}" if len(name) > 1 else f"-{name}", text]
    return args


def decode_hyperparameter(value: str) -> Any:
    """The toolkit JSON-decodes each stored value and keeps the raw string when that fails."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def toolkit_env(
    job: JobDirs,
    user: Mapping[str, Any],
    args: list[str],
    channels: Mapping[str, Any],
    program: str,
    submit_uri: str,
    hyperparameters: Mapping[str, Any],
    resource_config: Mapping[str, Any],
    vcpus: int,
) -> dict[str, str]:
    """The SM_* variables the training toolkit sets, with paths where the job finds its base dir;
    the toolkit counts the CPUs of the instance it runs in, so SM_NUM_CPUS is the instance type's
    vCPUs."""
    base = job.seen
    (group,) = resource_config["instance_groups"]
    channel_dirs = {name: str(base / "input" / "data" / name) for name in channels}
    values: dict[str, Any] = {
        "hosts": [HOST],
        "current_host": HOST,
        "current_instance_type": group["instance_type"],
        "current_instance_group": GROUP,
        "current_instance_group_hosts": [HOST],
        "instance_groups": [GROUP],
        "instance_groups_dict": {GROUP: group},
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "is_hetero": False,
        "network_interface_name": "eth0",
        "hps": dict(user),
        "user_entry_point": program,
        "module_name": program.removesuffix(".py"),
        "module_dir": submit_uri,
        "resource_config": dict(resource_config),
        "input_data_config": dict(channels),
        "channels": sorted(channels),
        "log_level": hyperparameters.get("sagemaker_container_log_level", 20),
        "num_cpus": vcpus,
        "num_gpus": 0,
        "model_dir": str(base / "model"),
        "input_dir": str(base / "input"),
        "input_config_dir": str(base / "input" / "config"),
        "output_dir": str(base / "output"),
        "output_data_dir": str(base / "output" / "data"),
        "output_intermediate_dir": str(base / "output" / "intermediate"),
        "user_args": args,
    }
    values["training_env"] = {
        **{k: v for k, v in values.items() if k not in ("hps", "channels", "user_args")},
        "hyperparameters": dict(user),
        "channel_input_dirs": channel_dirs,
        "job_name": job.name,
        "is_master": True,
        "master_hostname": HOST,
    }
    values.update({f"channel_{name}": path for name, path in channel_dirs.items()})
    values.update({f"hp_{name}": value for name, value in user.items()})
    return {f"SM_{key.upper()}": env_value(value) for key, value in values.items()}


def env_value(value: Any) -> str:
    """As the toolkit formats env values: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
