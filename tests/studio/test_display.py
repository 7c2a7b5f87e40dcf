"""What users read: activity lines, error wording, API timestamps, numbers, the client snippet, the favicon,
and static assets sent compressed with cache validators."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from oar.hub.orm import RunRow
from oar.studio.orm import DeploymentRow
from oar.studio.web.templating import TEMPLATES

pytestmark = pytest.mark.timeout(180)
API = "/api/v1"
ISO = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^"]*)"')


def _deployment(world, owner: str = "alice") -> str:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    with world.hub.sessions() as db:
        db.add(
            DeploymentRow(
                id="d0shown", model="sentiment", ref="sentiment:2", version=2, owner=owner,
                status="starting", state={}, message="", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        db.commit()
    return "d0shown"


def test_the_home_page_says_when_a_run_finished_without_a_doubled_word(world):
    finished = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    with world.hub.sessions() as db:
        db.execute(update(RunRow).where(RunRow.id == world.runs[0]).values(finished_at=finished))
        db.commit()
    page = world.client("alice").get("/").text
    line = next(li for li in page.split("<li>") if world.runs[0] in li)
    assert "run run" not in re.sub(r"<[^>]+>", " ", line).replace("  ", " ")
    assert f"{world.runs[0]} finished" in line and "2031-05-06 07:08:09 UTC" in line


def test_refusals_name_the_owner_without_a_doubled_quote(world):
    deployment = _deployment(world)
    message = world.client("bob").delete(f"{API}/deployments/{deployment}").json()["error"]["message"]
    assert "''" not in message and "owner (alice)" in message and f"deployment '{deployment}'" in message


def test_every_api_timestamp_is_rfc_3339_utc_with_a_z(world):
    _deployment(world)
    alice, admin = world.client("alice"), world.client("admin")
    created = alice.put(f"{API}/models/sentiment/aliases/production", json={"version": 1})
    assert created.status_code == 200
    bodies = [created.text]
    for path in (
        "/models",
        "/models/sentiment",
        "/models/sentiment/versions/2",
        "/models/sentiment/aliases",
        "/datasets",
        "/datasets/reviews",
        "/runs",
        f"/runs/{world.runs[0]}",
        "/deployments",
        "/tokens",
    ):
        answer = alice.get(API + path)
        assert answer.status_code == 200, (path, answer.text)
        body = answer.json()
        if isinstance(body, dict):
            body.pop("manifest", None)  # the package's own manifest file, shown as written
        bodies.append(json.dumps(body))
    bodies.append(admin.get(f"{API}/users").text)
    stamps = [stamp for body in bodies for stamp in ISO.findall(body)]
    assert len(stamps) > 15
    bad = [stamp for stamp in stamps if not stamp.endswith("Z")]
    assert not bad, bad
    for stamp in stamps:
        datetime.fromisoformat(stamp)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2.4e-06, "2.4e-06"), (13891.0, "13891"), (13891, "13891"), (0.8, "0.8000"), (0.0, "0"), (123456.5, "123456")],
)
def test_numbers_keep_their_significant_digits(value, shown):
    assert TEMPLATES.env.filters["number"](value) == shown


def test_the_python_snippet_shows_chinese_as_characters():
    deployment = SimpleNamespace(id="d1", ref="chnsenti@production", model="chnsenti", version=1, owner="alice",
                                 status="running", endpoint="http://127.0.0.1:9000", message="")  # fmt: skip
    html = TEMPLATES.get_template("deployments/detail.html").render(
        deployment=deployment,
        model=SimpleNamespace(task="text-classification"),
        example={"text": ["这家店的菜很好吃"]},
        token="oard_x",
        csrf="c",
        csrf_field="csrf_token",
    )
    snippet = html.split('<pre id="snippet">')[1].split("</pre>")[0]
    assert "inputs={&#34;text&#34;: [&#34;这家店的菜很好吃&#34;]}" in snippet and "\\u" not in snippet
    try_it = html.split("<textarea")[1].split("</textarea>")[0]
    assert "这家店的菜很好吃" in try_it


def test_the_favicon_is_oars_own(world):
    answer = world.client().get("/favicon.ico")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/x-icon"
    assert answer.content[:4] == b"\x00\x00\x01\x00" and "max-age" in answer.headers["cache-control"]


def test_plotly_is_sent_gzip_compressed_with_an_etag_and_revalidates_to_304(world):
    client = world.client()
    plain = client.get("/static/vendor/plotly.min.js", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    size = len(plain.content)
    assert size > 3_000_000
    packed = client.get("/static/vendor/plotly.min.js", headers={"accept-encoding": "gzip, deflate"})
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) < size * 0.4
    assert packed.content == plain.content  # the client decoded it
    assert "max-age" in packed.headers["cache-control"]
    etag = packed.headers["etag"]
    again = client.get("/static/vendor/plotly.min.js", headers={"if-none-match": etag, "accept-encoding": "gzip"})
    assert again.status_code == 304 and again.content == b""
    css = client.get("/static/studio.css", headers={"accept-encoding": "gzip"})
    assert css.status_code == 200 and css.headers["etag"] and css.headers["cache-control"] == "no-cache"
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_a_lineage_run_node_is_labelled_once(world):
    graph = world.client("alice").get(f"{API}/models/sentiment/versions/2/lineage").json()
    run = next(node for node in graph["nodes"] if node["kind"] == "run")
    assert run["label"] == world.runs[1]


def test_a_few_shot_models_page_shows_its_drawn_examples(world, numeric_package, tmp_path):
    from oar.package import ModelPackage

    target = tmp_path / "fewshot"
    shutil.copytree(numeric_package, target)
    manifest = ModelPackage.open(target).manifest
    draw = {"split": "train", "shots": 2, "seed": 7, "ids": [3, 11, 20, 41]}
    lineage = manifest.lineage.model_copy(update={"run_id": world.runs[0], "examples": draw})
    ModelPackage.write(target, manifest.model_copy(update={"lineage": lineage}))
    world.hub.register_model(target, "few", "alice")
    page = world.client("alice").get("/models/few/versions/1")
    assert page.status_code == 200
    assert "2 examples per class from the train split" in page.text and "seed 7" in page.text
    assert "3, 11, 20, 41" in page.text
    plain = world.client("alice").get("/models/sentiment/versions/1")
    assert plain.status_code == 200 and "fewshot-examples" not in plain.text
