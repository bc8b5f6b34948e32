"""Downloads against a real HTTP server on 127.0.0.1: resume, restart, retry, refuse, verify."""

from __future__ import annotations

import hashlib
import json
import os
import socket

import pytest
from http_server import serve

from zoo_bench.download import HashLock, OfflineError, RetryPolicy, fetch, part_path
from zoo_bench.errors import DownloadError

BODY = os.urandom(20_000)
SHA = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY).hexdigest()
FAST = RetryPolicy(retries=3, backoff=0.01, timeout=5.0, chunk=1024)


@pytest.fixture
def srv():
    with serve({"/zoo.tar.xz": BODY}) as s:
        yield s


def test_fetch_verifies_and_renames_into_place(srv, tmp_path):
    got = fetch(srv.url("/zoo.tar.xz"), tmp_path / "zoo.tar.xz", sha256=SHA, md5=MD5,
                size=len(BODY), policy=FAST, progress=False)
    assert got.path.read_bytes() == BODY
    assert (got.sha256, got.md5, got.size, got.resumed_from) == (SHA, MD5, len(BODY), 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo.tar.xz"]


def test_dropped_connection_resumes_with_range_to_the_right_hash(srv, tmp_path):
    srv.route("/zoo.tar.xz").drop_after = 7_000
    got = fetch(srv.url("/zoo.tar.xz"), tmp_path / "zoo.tar.xz", sha256=SHA, policy=FAST,
                progress=False)
    assert got.sha256 == SHA and 0 < got.resumed_from <= 7_000
    assert [h.range for h in srv.gets("/zoo.tar.xz")] == [None, f"bytes={got.resumed_from}-"]
    assert [h.status for h in srv.gets("/zoo.tar.xz")] == [200, 206]


def test_server_without_range_support_restarts_cleanly(srv, tmp_path):
    route = srv.route("/zoo.tar.xz")
    route.ranges, route.drop_after = False, 7_000
    got = fetch(srv.url("/zoo.tar.xz"), tmp_path / "zoo.tar.xz", sha256=SHA, policy=FAST,
                progress=False)
    assert got.path.read_bytes() == BODY and got.resumed_from == 0
    assert [h.status for h in srv.gets("/zoo.tar.xz")] == [200, 200]


def test_server_error_is_retried_then_succeeds(srv, tmp_path):
    srv.route("/zoo.tar.xz").statuses = [500, 503]
    got = fetch(srv.url("/zoo.tar.xz"), tmp_path / "zoo.tar.xz", sha256=SHA, policy=FAST,
                progress=False)
    assert got.sha256 == SHA
    assert [h.status for h in srv.gets("/zoo.tar.xz")] == [500, 503, 200]


def test_persistent_server_errors_give_up_after_the_bound(srv, tmp_path):
    srv.route("/zoo.tar.xz").statuses = [500] * 10
    with pytest.raises(DownloadError, match="after 4 failed attempts"):
        fetch(srv.url("/zoo.tar.xz"), tmp_path / "zoo.tar.xz", policy=FAST, progress=False)
    assert len(srv.gets("/zoo.tar.xz")) == 4


@pytest.mark.parametrize("status", [404, 403])
def test_missing_or_forbidden_fails_at_once_naming_the_url(srv, tmp_path, status):
    srv.route("/zoo.tar.xz").statuses = [status] * 5
    url = srv.url("/zoo.tar.xz")
    with pytest.raises(DownloadError, match=f"{url} answered HTTP {status}"):
        fetch(url, tmp_path / "zoo.tar.xz", policy=FAST, progress=False)
    assert len(srv.gets("/zoo.tar.xz")) == 1
    assert not (tmp_path / "zoo.tar.xz").exists()


def test_slow_server_hits_the_timeout_and_gives_up(srv, tmp_path):
    srv.route("/zoo.tar.xz").delay = 1.0
    policy = RetryPolicy(retries=1, backoff=0.01, timeout=0.2)
    with pytest.raises(DownloadError, match="ReadTimeout"):
        fetch(srv.url("/zoo.tar.xz"), tmp_path / "zoo.tar.xz", policy=policy, progress=False)
    assert not (tmp_path / "zoo.tar.xz").exists()


def test_stall_mid_body_times_out_then_resumes(srv, tmp_path):
    route = srv.route("/zoo.tar.xz")
    route.stall_after, route.stall = 5_000, 1.0
    policy = RetryPolicy(retries=2, backoff=0.01, timeout=0.3, chunk=1024)
    got = fetch(srv.url("/zoo.tar.xz"), tmp_path / "zoo.tar.xz", sha256=SHA, policy=policy,
                progress=False)
    assert got.sha256 == SHA and 0 < got.resumed_from <= 5_000
    assert [h.status for h in srv.gets("/zoo.tar.xz")] == [200, 206]


def test_wrong_body_is_a_hash_mismatch_and_the_file_is_removed(srv, tmp_path):
    wrong = hashlib.sha256(b"something else").hexdigest()
    dest = tmp_path / "zoo.tar.xz"
    with pytest.raises(DownloadError) as err:
        fetch(srv.url("/zoo.tar.xz"), dest, sha256=wrong, policy=FAST, progress=False)
    assert f"expected sha256 {wrong}, got {SHA}" in str(err.value)
    assert str(dest) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_leaves_only_the_partial_file_and_the_next_call_resumes(srv, tmp_path):
    dest = tmp_path / "zoo.tar.xz"

    def interrupt(received: int) -> None:
        if received >= 4_096:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch(srv.url("/zoo.tar.xz"), dest, sha256=SHA, policy=FAST, progress=False,
              on_chunk=interrupt)
    assert not dest.exists()
    assert part_path(dest).stat().st_size == 4_096
    got = fetch(srv.url("/zoo.tar.xz"), dest, sha256=SHA, policy=FAST, progress=False)
    assert got.sha256 == SHA and got.resumed_from == 4_096
    assert srv.gets("/zoo.tar.xz")[-1].range == "bytes=4096-"
    assert not part_path(dest).exists()


def test_partial_file_whose_bytes_are_wrong_is_caught_by_the_hash(srv, tmp_path):
    dest = tmp_path / "zoo.tar.xz"
    part_path(dest).write_bytes(b"x" * 3_000)
    (tmp_path / "zoo.tar.xz.part.json").write_text(json.dumps({"url": srv.url("/zoo.tar.xz")}))
    with pytest.raises(DownloadError, match="does not verify"):
        fetch(srv.url("/zoo.tar.xz"), dest, sha256=SHA, policy=FAST, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_host_names_the_url_and_where_to_put_the_file(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/zoo.tar.xz"
    dest = tmp_path / "zoo.tar.xz"
    with pytest.raises(OfflineError) as err:
        fetch(url, dest, policy=FAST, progress=False, hint="Or run `zoo-bench zoo import`.")
    msg = str(err.value)
    assert url in msg and str(dest) in msg and "offline" in msg and "zoo import" in msg


def test_hash_lock_records_and_reads_back(tmp_path):
    lock = HashLock(tmp_path / "downloads" / "sha256.lock.json")
    assert lock.get("http://x/a") == ""
    lock.record("http://x/a", SHA, 3, "zoo-a")
    assert lock.get("http://x/a") == SHA
    assert HashLock(lock.path).read()["http://x/a"]["zoo"] == "zoo-a"


def test_the_right_size_with_the_wrong_hash_is_still_refused(srv, tmp_path):
    # The catalog always passes a size where one is published: the size check must not stand in
    # for the hash check.
    wrong = hashlib.sha256(b"something else").hexdigest()
    dest = tmp_path / "zoo.tar.xz"
    with pytest.raises(DownloadError, match=f"expected sha256 {wrong}, got {SHA}"):
        fetch(srv.url("/zoo.tar.xz"), dest, sha256=wrong, size=len(BODY), policy=FAST,
              progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DownloadError, match=f"expected md5 {'0' * 32}, got {MD5}"):
        fetch(srv.url("/zoo.tar.xz"), dest, md5="0" * 32, size=len(BODY), policy=FAST,
              progress=False)
