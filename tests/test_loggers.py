"""W&B logging: offline without an account, WANDB_MODE wins, clear errors; the run folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_synth.loggers import WandbLogger, resolve_offline, wandb_account_configured


@pytest.fixture
def no_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No key in the environment, no WANDB_MODE, and a ~/.netrc that does not exist."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_without_an_account_the_run_is_offline(no_account: Path) -> None:
    assert not wandb_account_configured()
    assert resolve_offline(None) is True
    assert resolve_offline(False) is False  # an explicit choice wins


def test_an_api_key_or_a_netrc_login_means_online(
    no_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_account.write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    no_account.chmod(0o600)
    assert wandb_account_configured() and resolve_offline(None) is False
    no_account.write_text("machine example.com\n  login user\n  password secret\n")
    assert not wandb_account_configured()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_offline(None) is False


def test_wandb_mode_wins_and_a_bad_one_is_named(
    no_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_offline(None) is True
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("WANDB_MODE", "online")
    assert resolve_offline(None) is False
    monkeypatch.setenv("WANDB_MODE", "cloudy")
    with pytest.raises(ValueError, match="WANDB_MODE must be one of .* got 'cloudy'"):
        resolve_offline(None)


def test_uploading_checkpoints_offline_is_refused(no_account: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="log_model=True needs an online run"):
        WandbLogger(save_dir=tmp_path, log_model=True)
