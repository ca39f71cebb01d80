"""One bad input or a full disk never stops the pipeline, and a dead internal thread ends the process
(DESIGN.md promise 8): real agent processes, the real simulator on ptys, a real Mosquitto, a real tmpfs."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.demo import DAY_START
from agent.demo.local_broker import LocalBroker
from agent.threads import FAILPOINT_ENV
from tests.e2e.harness import Shop, wait_until

# The shop opens at 08:00: a day started there has readings within a second, where one started at
# midnight spent 40 real seconds (eight empty hours at x720) before its first.
OPENING = DAY_START + dt.timedelta(hours=8)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs for the agent's data folder (the tests run as root, see deploy/bootstrap.sh)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def full_log(shop: Shop) -> str:
    return (shop.workdir / "agent.log").read_text(errors="replace")


def health(shop: Shop) -> tuple[int, dict[str, object]]:
    match = re.search(r"health and metrics on (http://\S+)/health", full_log(shop))
    assert match, "the agent logs where its health endpoint is"
    try:
        with urllib.request.urlopen(match.group(1) + "/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def fill(disk: Path) -> Path:
    """Take every free byte of the tmpfs (unbuffered writes, smaller and smaller)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_a_full_disk_is_one_clear_error_and_loses_no_accepted_reading(
    tmp_path: Path, broker: LocalBroker, small_disk: Path
) -> None:
    shop = Shop(tmp_path / "shop", broker.port, factor=720, hours=48, lead_s=600, start=OPENING)
    data = small_disk / "data"
    config = shop.config_path.read_text().replace(f'data_dir = "{shop.workdir / "data"}"', f'data_dir = "{data}"')
    shop.config_path.write_text(config)
    shop.db_path = data / "shopkeeper.db"
    try:
        shop.start_sim()
        shop.start_agent()
        wait_until(lambda: shop.scalar("SELECT count(*) FROM events") > 20, 60, "readings before the disk fills",
                   shop.agent_log)  # fmt: skip
        filler = fill(small_disk)
        wait_until(lambda: "not writable" in shop.agent_log() or "cannot write" in shop.agent_log(), 60,
                   "the full disk to be reported", shop.agent_log)  # fmt: skip
        accepted = {i for (i,) in shop.query("SELECT id FROM events")}
        code, report = health(shop)
        assert code == 503 and any("not being stored" in r for r in report["reasons"]), report  # type: ignore[union-attr]
        time.sleep(3)  # the disk stays full a while: no crash loop, one clear error
        assert shop.agent is not None and shop.agent.poll() is None, "the agent keeps running"
        assert full_log(shop).count("cannot write") == 1, "one error line for the whole outage, not one per retry"
        filler.unlink()  # space frees
        wait_until(lambda: "writable again" in shop.agent_log(), 60, "recovery", shop.agent_log)
        wait_until(lambda: shop.scalar("SELECT count(*) FROM events") > len(accepted) + 5, 60,
                   "readings to flow again", shop.agent_log)  # fmt: skip
        after = {i for (i,) in shop.query("SELECT id FROM events")}
        assert accepted <= after, "a reading accepted before the disk filled vanished"
        code, report = health(shop)
        assert not any("not being stored" in r for r in report["reasons"]), report  # type: ignore[union-attr]
        shop.kill_agent(signal.SIGTERM)
        assert shop.agent.returncode == 0
    finally:
        shop.stop()


def pos_config(shop: Shop, folder: Path) -> None:
    """The demo shop, plus a POS drop folder and its category taxonomy."""
    text = shop.config_path.read_text()
    text = text.replace("[mqtt]", '[pos]\ntaxonomy = ["bakery", "dairy"]\n\n[mqtt]', 1)
    text += f'\n[drivers.till]\nkind = "pos_dropfolder"\nfolder = "{folder}"\nstable_s = 0.2\npoll_interval_s = 0.2\n'
    shop.config_path.write_text(text)


@pytest.mark.slow
def test_an_absurd_amount_is_refused_alone_while_door_counts_flow(tmp_path: Path, broker: LocalBroker) -> None:
    shop = Shop(tmp_path / "shop", broker.port, factor=720, hours=48, lead_s=600, start=OPENING)
    folder = tmp_path / "pos"
    folder.mkdir()
    pos_config(shop, folder)
    huge = "1" + "0" * 30 + ".00"  # 1e30, written the way an export would
    absurd = {"receipt_id": "r-absurd", "name": "Cake", "quantity": 1, "unit_price": huge, "line_total": huge}
    good = {"receipt_id": "r-good", "name": "Bun", "quantity": 2, "unit_price": "1.50", "line_total": "3.00"}
    try:
        shop.start_sim()
        shop.start_agent()
        wait_until(lambda: shop.scalar("SELECT count(*) FROM events") > 5, 60, "door counts", shop.agent_log)
        (folder / "a-absurd.jsonl").write_text(json.dumps(absurd) + "\n")
        (folder / "b-good.jsonl").write_text(json.dumps(good) + "\n")
        wait_until(lambda: shop.scalar("SELECT count(*) FROM baskets") >= 1, 60, "the good receipt", shop.agent_log)
        before = shop.scalar("SELECT count(*) FROM events")
        wait_until(lambda: shop.scalar("SELECT count(*) FROM events") > before + 5, 60, "door counts after it",
                   shop.agent_log)  # fmt: skip
        assert [r[0] for r in shop.query("SELECT source_id FROM baskets")] == ["r-good"]
        # The driver refuses it first (the ingest writer would too: tests/agent/test_ingest_faults.py), alone,
        # with its reason in the log and next to the file in failed/.
        reason = folder / "failed" / "a-absurd.jsonl.reason.txt"
        assert reason.exists() and huge in reason.read_text()
        assert "refused a-absurd.jsonl" in full_log(shop), "the refusal is logged with its reason"
        assert shop.agent is not None and shop.agent.poll() is None
    finally:
        shop.stop()


@pytest.mark.slow
def test_a_dead_writer_thread_ends_the_process_non_zero(tmp_path: Path, broker: LocalBroker) -> None:
    shop = Shop(tmp_path / "shop", broker.port, factor=720, hours=48, lead_s=600)
    shop.env = {**shop.env, FAILPOINT_ENV: "ingest-writer"}
    started = time.monotonic()
    try:
        shop.start_agent()
        assert shop.agent is not None
        code = shop.agent.wait(60)
    finally:
        shop.stop()
    assert code != 0, "a dead internal thread must not leave the agent running or exit 0"
    assert time.monotonic() - started < 60
    assert "internal thread ingest-writer died" in shop.agent_log()
