"""infra/secrets.py: runtime secrets under /prism/<stack>/, and what DATABASE_URL is built from."""

from __future__ import annotations

from infra.offline import OfflineRun, Secret
from tests.infra.conftest import FAKE_SECRETS

PARAM = "aws:ssm/parameter:Parameter"


def _params(run: OfflineRun) -> dict[str, dict]:
    return {p.inputs["name"]: p.inputs for p in run.of_type(PARAM)}


def test_config_secrets_become_securestrings(each_stack: OfflineRun) -> None:
    params = _params(each_stack)
    prefix = f"/prism/{each_stack.stack}/api"
    expected = {
        f"{prefix}/CLERK_SECRET_KEY": FAKE_SECRETS["prism-infra:clerkSecretKey"],
        f"{prefix}/CLERK_PUBLISHABLE_KEY": FAKE_SECRETS["prism-infra:clerkPublishableKey"],
        f"{prefix}/REDIS_URL": FAKE_SECRETS["prism-infra:redisUrl"],
    }
    for name, value in expected.items():
        assert params[name]["type"] == "SecureString"
        assert params[name]["value"] == Secret(value)


def test_database_url_parts_point_at_the_instance(each_stack: OfflineRun) -> None:
    params = _params(each_stack)
    db = each_stack.one("aws:rds/instance:Instance")
    base = f"/prism/{each_stack.stack}/database"
    assert params[f"{base}/host"]["insecureValue"] == db.outputs["address"]
    assert params[f"{base}/port"]["insecureValue"] == "5432"
    assert params[f"{base}/name"]["insecureValue"] == "prism"
    assert params[f"{base}/secret-arn"]["insecureValue"] == each_stack.outputs["dbMasterSecretArn"]
    for part in ("host", "port", "name", "secret-arn"):
        assert params[f"{base}/{part}"]["type"] == "String"  # none of these is a secret
        assert "value" not in params[f"{base}/{part}"]


def test_no_database_password_is_stored_anywhere(each_stack: OfflineRun) -> None:
    names = _params(each_stack)
    assert not any("DATABASE_URL" in n or "password" in n.lower() for n in names)


def test_every_parameter_lives_under_the_stack_prefix(each_stack: OfflineRun) -> None:
    assert all(n.startswith(f"/prism/{each_stack.stack}/") for n in _params(each_stack))
