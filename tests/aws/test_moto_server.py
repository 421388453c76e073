import boto3


def test_boto3_reaches_the_moto_server_and_each_test_starts_empty(moto):
    rds = boto3.client("rds")
    assert rds.meta.endpoint_url == moto.url
    assert rds.describe_db_instances()["DBInstances"] == []
    rds.create_db_instance(
        DBInstanceIdentifier="probe", DBInstanceClass="db.t4g.micro", Engine="postgres",
        MasterUsername="x", MasterUserPassword="x" * 12, AllocatedStorage=20,
    )
    assert len(rds.describe_db_instances()["DBInstances"]) == 1
    moto.reset()
    assert rds.describe_db_instances()["DBInstances"] == []
