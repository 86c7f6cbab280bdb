"""The offline local stack: moto as the AWS API, real Lambda runtime processes, an SQS poller."""
