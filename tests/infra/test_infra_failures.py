"""A deploy that fails after an approval reaches someone; logs are kept, encrypted and bounded.

The approval rule invokes the deploy Lambda asynchronously, so nobody waits for its answer: these
tests follow a failure from the function to the failure queue, to the alarms, to the topic that
`monitor setup`'s drift alarms use too. And the access and log records a reviewer of the account
asks for: S3 access logs of the artifact bucket, log groups with retention and a KMS key.
"""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import ACCOUNT, REGION, Request, Stack, as_list, decide

from pipelines.monitoring_schedule import resource_names
from pipelines.publish import LOCAL_EVENT_INVOKE_CONFIG
from pipelines.settings import Settings

KEY_CONTEXT = "kms:EncryptionContext:aws:logs:arn"


def alarms(stack: Stack) -> dict[str, dict[str, Any]]:
    return {name: stack.properties(name) for name in stack.of_type("AWS::CloudWatch::Alarm")}


def test_failed_async_invocations_go_to_the_failure_queue(stack: Stack) -> None:
    (config_id,) = stack.of_type("AWS::Lambda::EventInvokeConfig")
    config = stack.properties(config_id)
    assert config["FunctionName"] == stack.physical_id("DeployFunction")
    assert config["Qualifier"] == "$LATEST", "the approval rule invokes the unqualified function"
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == stack.arn("DeployFailureQueue")
    assert int(config["MaximumRetryAttempts"]) == 2
    assert int(config["MaximumEventAgeInSeconds"]) == 6 * 3600, "throttled events wait, not vanish"


def test_the_local_target_retries_the_deploy_function_as_the_stack_does(stack: Stack) -> None:
    (config_id,) = stack.of_type("AWS::Lambda::EventInvokeConfig")
    config = stack.properties(config_id)
    assert {key: int(config[key]) for key in LOCAL_EVENT_INVOKE_CONFIG} == LOCAL_EVENT_INVOKE_CONFIG


def test_approval_events_the_rule_cannot_deliver_also_go_to_the_queue(stack: Stack) -> None:
    (target,) = stack.properties("ModelApprovedRule")["Targets"]
    assert target["Arn"] == stack.arn("DeployFunction")
    assert target["DeadLetterConfig"]["Arn"] == stack.arn("DeployFailureQueue")
    policy = stack.properties("DeployFailureQueuePolicy")
    assert policy["Queues"] == [stack.ref("DeployFailureQueue")]
    queue = stack.arn("DeployFailureQueue")
    for source, decision in [
        (stack.arn("ModelApprovedRule"), "Allow"),
        (f"arn:aws:events:{REGION}:{ACCOUNT}:rule/other", "ImplicitDeny"),
    ]:
        request = Request("sqs:SendMessage", queue, {"aws:SourceArn": source})
        assert decide([policy["PolicyDocument"]], request) == decision


def test_the_deploy_role_records_failures_only_through_sqs(stack: Stack) -> None:
    documents = stack.role_policies("DeployFunctionRole")
    queue, key = stack.arn("DeployFailureQueue"), stack.arn("ProjectKey")
    via_sqs = {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"}
    assert decide(documents, Request("sqs:SendMessage", queue)) == "Allow"
    assert decide(documents, Request("kms:GenerateDataKey", key, via_sqs)) == "Allow"
    assert decide(documents, Request("kms:Decrypt", key, {})) == "ImplicitDeny", "only via SQS"
    assert decide(documents, Request("sqs:ReceiveMessage", queue)) == "ImplicitDeny"
    assert decide(documents, Request("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:x")) != "Allow"


def test_the_queue_keeps_failures_two_weeks_encrypted(stack: Stack) -> None:
    queue = stack.properties("DeployFailureQueue")
    assert int(queue["MessageRetentionPeriod"]) == 14 * 24 * 3600
    assert queue["KmsMasterKeyId"] == stack.arn("ProjectKey")
    assert queue["QueueName"] == f"{Settings().deploy_function_name}-failures"


def test_errors_and_failed_approvals_raise_alarms_on_the_monitoring_topic(stack: Stack) -> None:
    found = alarms(stack)
    metrics = {(a["Namespace"], a["MetricName"]): a for a in found.values()}
    assert set(metrics) == {("AWS/Lambda", "Errors"), ("AWS/SQS", "ApproximateNumberOfMessagesVisible")}
    errors = metrics["AWS/Lambda", "Errors"]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": Settings().deploy_function_name}]
    queued = metrics["AWS/SQS", "ApproximateNumberOfMessagesVisible"]
    assert queued["Dimensions"] == [{"Name": "QueueName", "Value": stack.physical_id("DeployFailureQueue")}]
    for alarm in found.values():
        assert alarm["AlarmActions"] == [stack.arn("MonitoringTopic")]
        assert (int(alarm["Threshold"]), alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert int(alarm["EvaluationPeriods"]) == 1, "the first failure notifies"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert "docs/aws.md" in alarm["AlarmDescription"], "the notification says where to look"


def test_monitor_setup_finds_the_stack_topic_and_leaves_the_deploy_alarms_alone(stack: Stack) -> None:
    """`monitor setup` asks SNS for <endpoint>-monitoring (CreateTopic returns an existing topic),
    and deletes alarms under its own prefix it did not just create: the deploy alarms must not be
    under that prefix."""
    settings = Settings()
    names = resource_names(settings.monitoring_pipeline_name, settings.endpoint_name)
    assert stack.properties("MonitoringTopic")["TopicName"] == names["topic"]
    for alarm in alarms(stack).values():
        assert not alarm["AlarmName"].startswith(names["alarm_prefix"]), alarm["AlarmName"]
    create = Request("sns:CreateTopic", stack.arn("MonitoringTopic"))
    assert decide(stack.role_policies("GitHubPipelineRole"), create) == "Allow"


def test_topic_and_log_groups_use_the_rotating_project_key(stack: Stack) -> None:
    key = stack.properties("ProjectKey")
    assert key["EnableKeyRotation"] is True
    assert stack.properties("MonitoringTopic")["KmsMasterKeyId"] == stack.arn("ProjectKey")
    groups = stack.of_type("AWS::Logs::LogGroup")
    assert set(groups) == {"DeployFunctionLogGroup", "EndpointLogGroup"}
    for group in groups:
        properties = stack.properties(group)
        assert properties["KmsKeyId"] == stack.arn("ProjectKey")
        assert int(properties["RetentionInDays"]) == 30


def key_statement(stack: Stack, sid: str) -> dict[str, Any]:
    statements = as_list(stack.properties("ProjectKey")["KeyPolicy"]["Statement"])
    (statement,) = [s for s in statements if s["Sid"] == sid]
    return dict(statement)


def test_logs_may_use_the_key_only_for_the_project_log_groups(stack: Stack) -> None:
    statement = key_statement(stack, "LogsEncryptTheProjectLogGroups")
    assert statement["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    for group in stack.of_type("AWS::Logs::LogGroup"):
        name = stack.physical_id(group)
        own = {KEY_CONTEXT: f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"}
        assert decide([policy], Request("kms:GenerateDataKey", "*", own)) == "Allow", name
    other = {KEY_CONTEXT: f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/other"}
    assert decide([policy], Request("kms:Decrypt", "*", other)) == "ImplicitDeny"


@pytest.mark.parametrize(
    "sid, service",
    [
        ("AlarmsPublishToTheTopic", "cloudwatch.amazonaws.com"),
        ("EventsRecordUndeliveredApprovals", "events.amazonaws.com"),
    ],
)
def test_services_that_write_encrypted_messages_may_use_the_key_for_this_account(
    stack: Stack, sid: str, service: str
) -> None:
    statement = key_statement(stack, sid)
    assert statement["Principal"] == {"Service": service}
    assert set(as_list(statement["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    mine, theirs = {"aws:SourceAccount": ACCOUNT}, {"aws:SourceAccount": "210987654321"}
    assert decide([policy], Request("kms:GenerateDataKey", "*", mine)) == "Allow"
    assert decide([policy], Request("kms:GenerateDataKey", "*", theirs)) == "ImplicitDeny"


def test_the_endpoint_log_group_is_where_sagemaker_writes(stack: Stack) -> None:
    name = stack.physical_id("EndpointLogGroup")
    assert name == f"/aws/sagemaker/Endpoints/{Settings().endpoint_name}"
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:log-stream:AllTraffic/i-0"
    assert decide(stack.role_policies("ExecutionRole"), Request("logs:PutLogEvents", stream)) == "Allow"


@pytest.mark.parametrize("reserved, expected", [("5", "5"), ("12", "12"), ("0", None)])
def test_reserved_concurrency_follows_its_parameter(
    template: dict[str, Any], reserved: str, expected: str | None
) -> None:
    """0 reserves nothing: an account whose whole Lambda quota is 10 cannot reserve any."""
    stack = Stack(template, DeployFunctionConcurrency=reserved)
    assert stack.properties("DeployFunction").get("ReservedConcurrentExecutions") == expected


def test_the_default_concurrency_leaves_room_for_the_synchronous_callers(template: dict[str, Any]) -> None:
    """Lambda steps (DeployEndpoint, the hourly ResolveServingModel) invoke synchronously and fail
    when throttled; approvals are queued. Room for both pipelines' steps and two approvals."""
    assert int(template["Parameters"]["DeployFunctionConcurrency"]["Default"]) >= 4


def test_the_artifact_bucket_logs_access_to_the_log_bucket(stack: Stack) -> None:
    logging = stack.properties("ArtifactBucket")["LoggingConfiguration"]
    assert logging == {
        "DestinationBucketName": stack.physical_id("AccessLogBucket"),
        "LogFilePrefix": "artifact-bucket/",
    }
    assert stack.template["Resources"]["ArtifactBucket"]["DependsOn"] == "AccessLogBucketPolicy"
    policy = stack.properties("AccessLogBucketPolicy")["PolicyDocument"]
    target = f"{stack.arn('AccessLogBucket')}/artifact-bucket/2024-01-01-00-00-00-ABCDEF"
    source = {"aws:SourceArn": stack.arn("ArtifactBucket"), "aws:SourceAccount": ACCOUNT}
    assert decide([policy], Request("s3:PutObject", target, source)) == "Allow"
    for other in [
        {**source, "aws:SourceArn": "arn:aws:s3:::another-bucket"},
        {**source, "aws:SourceAccount": "210987654321"},
    ]:
        assert decide([policy], Request("s3:PutObject", target, other)) == "ImplicitDeny"
    plain = Request("s3:GetObject", target, {"aws:SecureTransport": "false"})
    assert decide([policy], plain) == "Deny"


def test_a_given_bucket_name_is_the_log_source_too(template: dict[str, Any]) -> None:
    stack = Stack(template, BucketName="my-own-bucket")
    policy = stack.properties("AccessLogBucketPolicy")["PolicyDocument"]
    target = f"{stack.arn('AccessLogBucket')}/artifact-bucket/x"
    source = {"aws:SourceArn": "arn:aws:s3:::my-own-bucket", "aws:SourceAccount": ACCOUNT}
    assert decide([policy], Request("s3:PutObject", target, source)) == "Allow"


def test_the_log_bucket_is_private_encrypted_and_outlives_the_stack(stack: Stack) -> None:
    bucket = stack.properties("AccessLogBucket")
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}, "logs need SSE-S3"
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    expiry = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}["expire-access-logs"]
    assert int(expiry["ExpirationInDays"]) == 365
    assert stack.template["Resources"]["AccessLogBucket"]["DeletionPolicy"] == "Retain"
