"""The monitoring pipeline: find what the endpoint serves, then check its captured traffic for drift.

    ResolveServingModel (Lambda) -> CheckDrift (Processing: steps/monitor.py --mode check)

It runs on the same two targets as the training pipeline. On AWS an EventBridge Scheduler schedule
starts it hourly (`monitor setup`); locally `make monitor` starts it on demand.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.code_bundle import CodeBundle
from pipelines.sdk_env import prepare_sdk_environment
from pipelines.settings import Settings

prepare_sdk_environment()

from sagemaker.core.lambda_helper import Lambda  # noqa: E402
from sagemaker.core.workflow.execution_variables import ExecutionVariables  # noqa: E402
from sagemaker.core.workflow.functions import Join  # noqa: E402
from sagemaker.core.workflow.parameters import (  # noqa: E402
    ParameterFloat,
    ParameterInteger,
    ParameterString,
)
from sagemaker.mlops.workflow.lambda_step import (  # noqa: E402
    LambdaOutput,
    LambdaOutputTypeEnum,
    LambdaStep,
)
from sagemaker.mlops.workflow.pipeline import Pipeline  # noqa: E402
from sagemaker.mlops.workflow.steps import ProcessingStep  # noqa: E402

from pipelines.definition import (  # noqa: E402
    PROCESSING_BASE,
    StepFactory,
    render,
    s3_input,
    s3_output,
)

SERVING_OUTPUTS = ("model_data_url", "baseline_uri", "model_package_arn", "endpoint_config_name")


@dataclass(frozen=True)
class MonitoringParameters:
    endpoint_name: ParameterString
    window_start: ParameterString
    window_end: ParameterString
    window_hours: ParameterString
    min_records: ParameterInteger
    threshold: ParameterFloat
    publish_metrics: ParameterString
    instance_type: ParameterString

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringParameters:
        return cls(
            endpoint_name=ParameterString("EndpointName", default_value=settings.endpoint_name),
            window_start=ParameterString("WindowStart", default_value=""),
            window_end=ParameterString("WindowEnd", default_value=""),
            window_hours=ParameterString("WindowHours", default_value=""),
            min_records=ParameterInteger("MinRecords", default_value=200),
            threshold=ParameterFloat("DriftThreshold", default_value=0.1),
            # Local runs have no CloudWatch to publish to.
            publish_metrics=ParameterString(
                "PublishMetrics", default_value="false" if settings.is_local else "true",
                enum_values=["true", "false"],
            ),
            instance_type=ParameterString(
                "ProcessingInstanceType", default_value=settings.processing_instance_type
            ),
        )


class _MonitoringPipeline(StepFactory):
    def __init__(self, settings: Settings, bundle: CodeBundle) -> None:
        super().__init__(settings, bundle)
        self.params = MonitoringParameters.from_settings(settings)

    def resolve(self) -> LambdaStep:
        return LambdaStep(
            name="ResolveServingModel",
            display_name="Find the serving model version",
            description=(
                "Asks the deploy function which registered version the endpoint serves, with its "
                "model artifact and drift-check baseline."
            ),
            lambda_func=Lambda(function_arn=self.settings.deploy_function_arn, session=self.session),
            inputs={"action": "describe_serving", "endpoint_name": self.params.endpoint_name},
            outputs=[
                LambdaOutput(output_name=name, output_type=LambdaOutputTypeEnum.String)
                for name in SERVING_OUTPUTS
            ],
        )

    def check(self, resolve: LambdaStep) -> ProcessingStep:
        params = self.params
        serving = resolve.properties.Outputs
        args = self.processor("sentiment-monitor", params.instance_type).run(
            code=self.code_uri("monitor.py"),
            arguments=[
                "--mode", "check",
                "--endpoint-name", params.endpoint_name,
                "--window-start", params.window_start,
                "--window-end", params.window_end,
                "--window-hours", params.window_hours,
                "--min-records", params.min_records.to_string(),
                "--threshold", params.threshold.to_string(),
                "--publish-metrics", params.publish_metrics,
            ],
            inputs=[
                self.library_input(),
                s3_input("model", serving["model_data_url"], f"{PROCESSING_BASE}/model"),
                s3_input("baseline", serving["baseline_uri"], f"{PROCESSING_BASE}/baseline"),
                # The trailing "/" matters: an S3Prefix input is a key prefix, so without it the
                # job would also read the capture of every endpoint whose name starts with this one.
                s3_input(
                    "capture",
                    Join(on="/", values=[self.settings.s3_uri("data-capture"),
                                         params.endpoint_name, ""]),
                    f"{PROCESSING_BASE}/capture",
                ),
            ],
            outputs=[
                s3_output(
                    "monitoring",
                    Join(on="/", values=[self.settings.s3_uri("monitoring"), params.endpoint_name,
                                         ExecutionVariables.PIPELINE_EXECUTION_ID]),
                    f"{PROCESSING_BASE}/monitoring",
                )
            ],
        )
        return ProcessingStep(
            name="CheckDrift",
            step_args=args,
            display_name="Check captured traffic for drift",
            description=(
                "Computes the monitored features of the captured requests in the window and "
                "compares them with the serving version's baseline; writes Model Monitor's files "
                "and report.html."
            ),
        )

    def pipeline(self) -> Pipeline:
        resolve = self.resolve()
        return Pipeline(
            name=self.settings.monitoring_pipeline_name,
            parameters=list(vars(self.params).values()),
            steps=[resolve, self.check(resolve)],
            sagemaker_session=self.session,
        )


def monitoring_definition_json(settings: Settings, bundle: CodeBundle | None = None) -> str:
    return render(lambda: _MonitoringPipeline(settings, bundle or CodeBundle()).pipeline())
