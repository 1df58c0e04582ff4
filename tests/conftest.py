from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_lightning() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to fetch pretrained weights fails the test instead of going online."""
    import torch.hub
    import torch.utils.model_zoo
    from torchvision.models import _api

    def refuse(*args: object, **kwargs: object) -> None:
        msg = "a test tried to download weights"
        raise AssertionError(msg)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.utils.model_zoo, "load_url", refuse)
    monkeypatch.setattr(_api.WeightsEnum, "get_state_dict", refuse)


@pytest.fixture(autouse=True)
def _wandb_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test logs to W&B online, whatever account the machine has."""
    monkeypatch.setenv("WANDB_MODE", "offline")
