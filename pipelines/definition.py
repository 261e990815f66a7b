"""The one pipeline definition, built with the SageMaker Python SDK v3.

Preprocess -> Train -> Evaluate -> AccuracyCheck -> (RegisterModel -> DeployEndpoint | AccuracyTooLow)

The JSON this produces is what both targets run: SageMaker itself, and the local SageMaker in
`pipelines.local`. Building it makes no AWS call: code is referenced at content-hash S3 URIs that
`upsert` fills in, so the same code always gives byte-identical JSON.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from pipelines.code_bundle import PROCESSING_LIBRARY, STEP_ENVIRONMENT, CodeBundle
from pipelines.datasets import UNRECORDED
from pipelines.sdk_env import prepare_sdk_environment
from pipelines.settings import Settings

prepare_sdk_environment()

from sagemaker.core import image_uris  # noqa: E402
from sagemaker.core.drift_check_baselines import DriftCheckBaselines  # noqa: E402
from sagemaker.core.lambda_helper import Lambda  # noqa: E402
from sagemaker.core.model_metrics import MetricsSource, ModelMetrics  # noqa: E402
from sagemaker.core.processing import ScriptProcessor  # noqa: E402
from sagemaker.core.shapes import (  # noqa: E402
    OutputDataConfig,
    ProcessingInput,
    ProcessingOutput,
    ProcessingS3Input,
    ProcessingS3Output,
)
from sagemaker.core.training.configs import Compute, InputData  # noqa: E402
from sagemaker.core.workflow.conditions import ConditionGreaterThan  # noqa: E402
from sagemaker.core.workflow.execution_variables import ExecutionVariables  # noqa: E402
from sagemaker.core.workflow.functions import Join, JsonGet  # noqa: E402
from sagemaker.core.workflow.parameters import (  # noqa: E402
    ParameterFloat,
    ParameterInteger,
    ParameterString,
)
from sagemaker.core.workflow.pipeline_context import PipelineSession  # noqa: E402
from sagemaker.core.workflow.properties import PropertyFile  # noqa: E402
from sagemaker.mlops.workflow.condition_step import ConditionStep  # noqa: E402
from sagemaker.mlops.workflow.fail_step import FailStep  # noqa: E402
from sagemaker.mlops.workflow.lambda_step import (  # noqa: E402
    LambdaOutput,
    LambdaOutputTypeEnum,
    LambdaStep,
)
from sagemaker.mlops.workflow.model_step import ModelStep  # noqa: E402
from sagemaker.mlops.workflow.pipeline import Pipeline  # noqa: E402
from sagemaker.mlops.workflow.retry import (  # noqa: E402
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)
from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep  # noqa: E402
from sagemaker.serve.model_builder import ModelBuilder  # noqa: E402
from sagemaker.train import ModelTrainer  # noqa: E402

ACCURACY_PATH = "binary_classification_metrics.accuracy.value"
SHOWN_ACCURACY_PATH = "accuracy"  # in summary.json: the accuracy as messages show it
MODEL_DATA_DIGEST_KEY = "ModelDataSha256"  # steps/integrity.py DIGEST_KEY
CONTENT_TYPES = ["application/json", "application/jsonlines", "text/csv"]
RESPONSE_TYPES = ["application/json", "application/jsonlines"]
DEPLOY_OUTPUTS = ("action", "endpoint_name", "model_name", "endpoint_config_name", "reason")
PROCESSING_BASE = "/opt/ml/processing"
CACHE = CacheConfig(enable_caching=True, expire_after="P30D")
JSON = "application/json"
# Retries a production pipeline wants. Throttling and service faults of the calls Pipelines makes:
# soon and a few times. A job that failed for SageMaker's own reasons (an internal error, no EC2
# capacity) or hit an account quota: after a minute, backing off; a quota for up to two hours.
# Nothing retries an AlgorithmError: the same code on the same data fails the same way. The Lambda
# step takes no RetryPolicies (SageMaker supports them on job and model steps only); the deploy
# handler is idempotent and returns at once, so a rerun of the execution repeats it safely.
SERVICE_RETRY = StepRetryPolicy(
    exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
    interval_seconds=5,
    backoff_rate=2.0,
    max_attempts=5,
)
JOB_RETRIES = [
    SERVICE_RETRY,
    SageMakerJobStepRetryPolicy(
        failure_reason_types=[
            SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
            SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
        ],
        interval_seconds=60,
        backoff_rate=2.0,
        max_attempts=3,
    ),
    SageMakerJobStepRetryPolicy(
        exception_types=[SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT],
        interval_seconds=60,
        backoff_rate=2.0,
        expire_after_mins=120,
    ),
]


@dataclass(frozen=True)
class Parameters:
    """Everything a user tunes per run, with defaults from the settings."""

    input_data: ParameterString
    input_data_sha256: ParameterString
    input_data_version_ids: ParameterString
    processing_instance_type: ParameterString
    processing_instance_count: ParameterInteger
    training_instance_type: ParameterString
    ngram_max: ParameterInteger
    max_features: ParameterInteger
    regularization_c: ParameterString
    min_df: ParameterInteger
    lexicon_emphasis: ParameterString
    accuracy_threshold: ParameterFloat
    approval_status: ParameterString
    endpoint_name: ParameterString
    endpoint_instance_type: ParameterString
    endpoint_instance_count: ParameterInteger
    capture_percentage: ParameterInteger

    @classmethod
    def from_settings(cls, settings: Settings) -> Parameters:
        return cls(
            # No default: a run names the dataset it reads (`start` passes the one last uploaded).
            # The data prefix holds every dataset in a folder of its own, so as a default it could
            # only fail, after a Processing job had staged all of them.
            input_data=ParameterString("InputDataUri"),
            # What `start` passes with the uploaded dataset's URI, for the model's lineage.
            input_data_sha256=ParameterString("InputDataSha256", default_value=UNRECORDED),
            input_data_version_ids=ParameterString("InputDataVersionIds", default_value=UNRECORDED),
            processing_instance_type=ParameterString(
                "ProcessingInstanceType", default_value=settings.processing_instance_type
            ),
            processing_instance_count=ParameterInteger("ProcessingInstanceCount", default_value=1),
            training_instance_type=ParameterString(
                "TrainingInstanceType", default_value=settings.training_instance_type
            ),
            ngram_max=ParameterInteger("NgramMax", default_value=2),
            max_features=ParameterInteger("MaxFeatures", default_value=20000),
            # "auto": Train picks C by cross-validation on the training split; a number fixes it.
            regularization_c=ParameterString("RegularizationC", default_value="auto"),
            min_df=ParameterInteger("MinDf", default_value=1),
            # "auto": Train picks how much lexicon terms' idf is raised by cross-validation too.
            lexicon_emphasis=ParameterString("LexiconEmphasis", default_value="auto"),
            accuracy_threshold=ParameterFloat("AccuracyThreshold", default_value=0.8),
            approval_status=ParameterString(
                "ModelApprovalStatus",
                default_value=settings.approval_status,
                enum_values=["Approved", "PendingManualApproval", "Rejected"],
            ),
            endpoint_name=ParameterString("EndpointName", default_value=settings.endpoint_name),
            endpoint_instance_type=ParameterString(
                "EndpointInstanceType", default_value=settings.endpoint_instance_type
            ),
            endpoint_instance_count=ParameterInteger(
                "EndpointInstanceCount", default_value=settings.endpoint_instance_count
            ),
            capture_percentage=ParameterInteger(
                "CaptureSamplingPercentage", default_value=settings.capture_percentage
            ),
        )

    def all(self) -> list[Any]:
        return list(vars(self).values())


def execution_uri(settings: Settings, *parts: str) -> Join:
    """An S3 URI unique to the execution, so runs never overwrite each other's outputs."""
    return Join(
        on="/",
        values=[settings.s3_uri("executions"), ExecutionVariables.PIPELINE_EXECUTION_ID, *parts],
    )


def _output_file(step: ProcessingStep, output: str, name: str) -> Join:
    """The S3 URI of one file a Processing step wrote into one of its outputs."""
    return Join(
        on="/", values=[step.properties.ProcessingOutputConfig.Outputs[output].S3Output.S3Uri, name]
    )


def _split_uri(preprocess: ProcessingStep, split: str) -> Any:
    """Where Preprocess wrote the clean train or test split."""
    return preprocess.properties.ProcessingOutputConfig.Outputs[split].S3Output.S3Uri


def s3_input(name: str, uri: Any, local_path: str) -> ProcessingInput:
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri, local_path=local_path, s3_data_type="S3Prefix", s3_input_mode="File"
        ),
    )


def s3_output(name: str, uri: Any, local_path: str) -> ProcessingOutput:
    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(s3_uri=uri, local_path=local_path, s3_upload_mode="EndOfJob"),
    )


class StepFactory:
    """What every step needs (settings, session, image, code), shared by both pipelines."""

    def __init__(self, settings: Settings, bundle: CodeBundle) -> None:
        self.settings = settings
        self.bundle = bundle
        boto_session = boto3.Session(region_name=settings.region)
        self.session = PipelineSession(boto_session=boto_session, default_bucket=settings.bucket)
        self.image = image_uris.retrieve(
            "sklearn",
            settings.region,
            version=settings.sklearn_version,
            instance_type=settings.training_instance_type,
        )

    def code_uri(self, name: str) -> str:
        return f"s3://{self.settings.bucket}/{self.bundle.key(self.settings.prefix, name)}"

    def library_input(self) -> ProcessingInput:
        """The library folder (artifact.py, monitoring/) for the scripts that open model.tar.gz:
        a job ships one script, so what it imports arrives as this second input."""
        return s3_input("lib", self.code_uri(PROCESSING_LIBRARY), f"{PROCESSING_BASE}/input/lib")

    def processor(self, base_job_name: str, instance_type: Any, instance_count: Any = 1) -> ScriptProcessor:
        return ScriptProcessor(
            role=self.settings.role_arn,
            image_uri=self.image,
            command=["python3"],
            instance_type=instance_type,
            instance_count=instance_count,
            base_job_name=base_job_name,
            sagemaker_session=self.session,
            env=dict(STEP_ENVIRONMENT),
        )



class _TrainingPipeline(StepFactory):
    """Preprocess -> Train -> Evaluate -> AccuracyCheck -> Register + Deploy | Fail."""

    def __init__(self, settings: Settings, bundle: CodeBundle) -> None:
        super().__init__(settings, bundle)
        self.params = Parameters.from_settings(settings)

    def training_processor(self, base_job_name: str) -> ScriptProcessor:
        return self.processor(
            base_job_name,
            self.params.processing_instance_type,
            self.params.processing_instance_count,
        )

    def preprocess(self) -> ProcessingStep:
        args = self.training_processor("sentiment-preprocess").run(
            code=self.code_uri("preprocess.py"),
            inputs=[s3_input("raw", self.params.input_data, f"{PROCESSING_BASE}/input/data")],
            outputs=[
                s3_output(
                    "train", execution_uri(self.settings, "train"), f"{PROCESSING_BASE}/train"
                ),
                s3_output(
                    "test", execution_uri(self.settings, "test"), f"{PROCESSING_BASE}/test"
                ),
            ],
        )
        return ProcessingStep(
            name="Preprocess",
            step_args=args,
            display_name="Validate and clean reviews",
            description=(
                "Checks train.csv and test.csv (columns, labels, text, encoding, classes) and "
                "writes clean copies; a bad file fails here with its name, line and problem."
            ),
            cache_config=CACHE,
            retry_policies=JOB_RETRIES,
        )

    def train(self, preprocess: ProcessingStep) -> TrainingStep:
        params = self.params
        trainer = ModelTrainer(
            sagemaker_session=self.session,
            role=self.settings.role_arn,
            training_image=self.image,
            base_job_name="sentiment-train",
            compute=Compute(instance_type=params.training_instance_type, instance_count=1),
            hyperparameters={
                "ngram-max": params.ngram_max.to_string(),
                "max-features": params.max_features.to_string(),
                "regularization-c": params.regularization_c,
                "min-df": params.min_df.to_string(),
                "lexicon-emphasis": params.lexicon_emphasis,
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": self.code_uri("sourcedir.tar.gz"),
            },
            output_data_config=OutputDataConfig(
                s3_output_path=execution_uri(self.settings, "model")
            ),
            input_data_config=[
                InputData(
                    channel_name="train",
                    data_source=_split_uri(preprocess, "train"),
                )
            ],
            environment=dict(STEP_ENVIRONMENT),
        )
        return TrainingStep(
            name="Train",
            step_args=trainer.train(),
            display_name="Train TF-IDF + lexicon + logistic regression",
            description=(
                "Fits word n-gram TF-IDF and VADER lexicon features into a logistic regression "
                "(C by cross-validation unless set) and packs model.tar.gz with the model as plain "
                "data, its file digests and code/inference.py + scorer.py."
            ),
            cache_config=CACHE,
            retry_policies=JOB_RETRIES,
        )

    def evaluate(
        self, preprocess: ProcessingStep, train: TrainingStep, reports: list[PropertyFile]
    ) -> ProcessingStep:
        args = self.training_processor("sentiment-evaluate").run(
            code=self.code_uri("evaluate.py"),
            inputs=[
                self.library_input(),
                s3_input("model", train.properties.ModelArtifacts.S3ModelArtifacts,
                         f"{PROCESSING_BASE}/model"),
                s3_input("test", _split_uri(preprocess, "test"), f"{PROCESSING_BASE}/test"),
                s3_input("train", _split_uri(preprocess, "train"), f"{PROCESSING_BASE}/train"),
            ],
            outputs=[
                s3_output(name, execution_uri(self.settings, name), f"{PROCESSING_BASE}/{name}")
                for name in ("evaluation", "baseline")
            ],
        )
        return ProcessingStep(
            name="Evaluate",
            step_args=args,
            display_name="Evaluate and make the drift baseline",
            description=(
                "Scores the packed model on test.csv through its own inference code and writes "
                "evaluation.json in SageMaker's binary-classification model-quality format, "
                "summary.json with the accuracy as messages show it, and model-data.json with the "
                "SHA-256 of the model.tar.gz it scored; then the monitored features of train.csv as "
                "the model answers it, as Model Monitor's statistics.json and constraints.json: "
                "the version's drift baseline."
            ),
            property_files=reports,
            cache_config=CACHE,
            retry_policies=JOB_RETRIES,
        )

    def register(
        self, train: TrainingStep, evaluate: ProcessingStep, model_data: PropertyFile
    ) -> ModelStep:
        evaluation_uri = _output_file(evaluate, "evaluation", "evaluation.json")
        statistics = MetricsSource(
            content_type=JSON, s3_uri=_output_file(evaluate, "baseline", "statistics.json")
        )
        constraints = MetricsSource(
            content_type=JSON, s3_uri=_output_file(evaluate, "baseline", "constraints.json")
        )
        builder = ModelBuilder(
            image_uri=self.image,
            s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
            sagemaker_session=self.session,
            role_arn=self.settings.role_arn,
            # inference.py travels inside model.tar.gz, so no repack step is needed.
            env_vars={
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            },
            dependencies=None,
        )
        args = builder.register(
            model_package_group_name=self.settings.model_package_group,
            content_types=CONTENT_TYPES,
            response_types=RESPONSE_TYPES,
            inference_instances=[self.settings.endpoint_instance_type],
            transform_instances=[self.settings.endpoint_instance_type],
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(s3_uri=evaluation_uri, content_type=JSON),
                model_data_statistics=statistics,
                model_data_constraints=constraints,
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=statistics, model_data_constraints=constraints
            ),
            approval_status=self.params.approval_status,
            description="Sentiment classifier (TF-IDF + lexicon features, logistic regression)",
            # The digest of the evaluated model.tar.gz, kept where the artifact cannot change it:
            # the deploy handler and local hosting refuse model data that does not match.
            customer_metadata_properties={
                MODEL_DATA_DIGEST_KEY: JsonGet(
                    step_name=evaluate.name, property_file=model_data, json_path="sha256"
                ),
                # Which data made this model: the dataset's content address, digest, S3 versions.
                "InputDataUri": self.params.input_data,
                "InputDataSha256": self.params.input_data_sha256,
                "InputDataVersionIds": self.params.input_data_version_ids,
            },
        )
        return ModelStep(
            name="RegisterModel",
            step_args=args,
            display_name="Register in the model registry",
            description=(
                "Adds a version to the model package group with its evaluation metrics, the "
                "SHA-256 of its model data (ModelDataSha256), the data it was trained on and the "
                "run's approval status."
            ),
            retry_policies=[SERVICE_RETRY],
        )

    def deploy(self, register: ModelStep) -> LambdaStep:
        params = self.params
        return LambdaStep(
            name="DeployEndpoint",
            display_name="Deploy to the real-time endpoint",
            description=(
                "Runs the deploy Lambda: creates or updates the endpoint with data capture on, "
                "only for an Approved model version."
            ),
            lambda_func=Lambda(
                function_arn=self.settings.deploy_function_arn, session=self.session
            ),
            inputs={
                "model_package_arn": register.properties.ModelPackageArn,
                "endpoint_name": params.endpoint_name,
                "role_arn": self.settings.role_arn,
                "instance_type": params.endpoint_instance_type,
                "instance_count": params.endpoint_instance_count,
                "capture_destination": self.settings.s3_uri("data-capture"),
                "capture_percentage": params.capture_percentage,
            },
            outputs=[
                LambdaOutput(output_name=name, output_type=LambdaOutputTypeEnum.String)
                for name in DEPLOY_OUTPUTS
            ],
        )

    def pipeline(self) -> Pipeline:
        report = PropertyFile(
            name="EvaluationReport", output_name="evaluation", path="evaluation.json"
        )
        summary = PropertyFile(
            name="EvaluationSummary", output_name="evaluation", path="summary.json"
        )
        model_data = PropertyFile(
            name="ModelDataDigest", output_name="evaluation", path="model-data.json"
        )
        preprocess = self.preprocess()
        train = self.train(preprocess)
        evaluate = self.evaluate(preprocess, train, [report, summary, model_data])
        accuracy = JsonGet(step_name=evaluate.name, property_file=report, json_path=ACCURACY_PATH)
        register = self.register(train, evaluate, model_data)
        too_low = FailStep(
            name="AccuracyTooLow",
            display_name="Stop: accuracy too low",
            description="Ends the run without registering a model.",
            error_message=Join(
                on=" ",
                values=[
                    "Model accuracy",
                    JsonGet(step_name=evaluate.name, property_file=summary,
                            json_path=SHOWN_ACCURACY_PATH),
                    "is not above the threshold",
                    self.params.accuracy_threshold,
                    "- nothing was registered or deployed.",
                ],
            ),
        )
        check = ConditionStep(
            name="AccuracyCheck",
            display_name="Accuracy above threshold?",
            description="Registers and deploys only a model whose test accuracy beats the threshold.",
            conditions=[ConditionGreaterThan(left=accuracy, right=self.params.accuracy_threshold)],
            if_steps=[register, self.deploy(register)],
            else_steps=[too_low],
        )
        return Pipeline(
            name=self.settings.pipeline_name,
            parameters=self.params.all(),
            steps=[preprocess, train, evaluate, check],
            sagemaker_session=self.session,
        )


def get_pipeline(settings: Settings, bundle: CodeBundle | None = None) -> Pipeline:
    """The pipeline object, for tools that want the SDK's view of it."""
    return _TrainingPipeline(settings, bundle or CodeBundle()).pipeline()


def render(build: Callable[[], Pipeline]) -> str:
    """Build a pipeline and return its definition as pretty, stable JSON."""
    # The SDK configures the root logger and narrates defaults and popped job names while it builds.
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = build().definition()
    finally:
        logging.disable(logging.NOTSET)
    return json.dumps(json.loads(raw), indent=2) + "\n"


def definition_json(settings: Settings, bundle: CodeBundle | None = None) -> str:
    """The training pipeline's definition: the single source of truth for both targets."""
    return render(lambda: get_pipeline(settings, bundle))
