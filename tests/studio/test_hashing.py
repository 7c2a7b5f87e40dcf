"""Argon2's cost comes from the studio's configuration only: an environment variable left over from a test
setup cannot weaken a real deployment's password and token hashes."""

from __future__ import annotations

import argon2
import pytest
from argon2 import profiles
from sqlalchemy import select

from oar.studio.config import StudioConfig
from oar.studio.orm import ApiTokenRow, UserRow
from oar.studio.services import Services

pytestmark = pytest.mark.timeout(120)


def test_a_studio_hashes_at_full_cost_whatever_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.setenv("OAR_ARGON2_PROFILE", "cheapest")
    services = Services.build(StudioConfig(home=tmp_path))
    try:
        user = services.accounts.create_user("alice", "member", "long enough password")
        services.accounts.issue_token(user.id, "laptop")
        with services.hub.sessions() as db:
            stored = [db.scalar(select(UserRow.password_hash)), db.scalar(select(ApiTokenRow.secret_hash))]
    finally:
        services.close()
    for digest in stored:
        parameters = argon2.extract_parameters(digest)
        assert parameters.memory_cost == profiles.RFC_9106_LOW_MEMORY.memory_cost == 64 * 1024
        assert parameters.time_cost == profiles.RFC_9106_LOW_MEMORY.time_cost


def test_a_test_suite_chooses_cheap_hashing_in_the_configuration(tmp_path):
    services = Services.build(StudioConfig(home=tmp_path, argon2=profiles.CHEAPEST))
    try:
        user = services.accounts.create_user("alice", "member", "long enough password")
        with services.hub.sessions() as db:
            stored = db.scalar(select(UserRow.password_hash))
        assert argon2.extract_parameters(stored).memory_cost == profiles.CHEAPEST.memory_cost
        assert services.accounts.authenticate("alice", "long enough password").id == user.id
    finally:
        services.close()


def test_a_password_hashed_cheaply_earlier_is_rehashed_at_full_cost_on_sign_in(tmp_path):
    cheap = Services.build(StudioConfig(home=tmp_path, argon2=profiles.CHEAPEST))
    try:
        cheap.accounts.create_user("alice", "member", "long enough password")
    finally:
        cheap.close()
    services = Services.build(StudioConfig(home=tmp_path))
    try:
        assert services.accounts.authenticate("alice", "wrong password") is None
        with services.hub.sessions() as db:
            assert argon2.extract_parameters(db.scalar(select(UserRow.password_hash))).memory_cost == 8
        assert services.accounts.authenticate("alice", "long enough password") is not None
        with services.hub.sessions() as db:
            stored = db.scalar(select(UserRow.password_hash))
        assert argon2.extract_parameters(stored).memory_cost == profiles.RFC_9106_LOW_MEMORY.memory_cost
        assert services.accounts.authenticate("alice", "long enough password") is not None
    finally:
        services.close()
