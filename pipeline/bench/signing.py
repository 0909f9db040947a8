"""What signing advisories costs: a tower's Ed25519 signature and a vehicle's check of it, per
advisory, and hazard → advisory latency at 5,000 updates/s with the towers signing and the fleet
verifying, against neither (twice each: one 30-s run's p99 rests on its few slowest hazards)."""

from __future__ import annotations

import statistics
import tempfile
import timeit
from pathlib import Path
from typing import Any

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.bench.towers import latency_at, tower_worker
from pipeline.leftovers import scratch_prefix
from pipeline.shared.advisory_signing import Signer, Verifier, new_signing_key, public_pem
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.messages import ADVISORY, CODEC
from pipeline.shared.topics import Topics

__all__ = ["run_signing"]


def _an_advisory() -> bytes:
    return CODEC.encode(ADVISORY, {
        "advisory_id": "tower-4-0000000001234", "region_id": 4, "tower": "tower-4", "target_vehicle": "veh-0001234",
        "direction": "NORTHBOUND", "action": "SLOW_DOWN", "target_speed_mps": 13.9, "reason": "hazard ahead",
        "hazard_id": "hz-deer", "issued_at": 1_764_000_000_000, "valid_until": 1_764_000_010_000,
        "trigger_event_time": 1_764_000_000_000, "trigger_hlc": 1_764_000_000_000 << 16})  # fmt: skip


def _per_advisory(quick: bool) -> dict[str, Any]:
    key = new_signing_key()
    signer, verifier, value = Signer(key), Verifier([public_pem(key)]), _an_advisory()
    signature = signer.sign(value)
    n = 2_000 if quick else 20_000
    sign_us = min(timeit.repeat(lambda: signer.sign(value), number=n, repeat=3)) / n * 1e6
    verify_us = min(timeit.repeat(lambda: verifier.problem(value, signature), number=n, repeat=3)) / n * 1e6
    return {"advisory_bytes": len(value), "signature_bytes": len(signature), "sign_us": sign_us,
            "verify_us": verify_us, "advisories_per_core_s_signing": 1e6 / sign_us}  # fmt: skip


def _latency(settings: Settings, quick: bool) -> dict[str, Any]:
    bootstrap, corridor = settings.bootstrap_servers, load_corridor()
    runs: dict[str, list[dict[str, Any]]] = {"unsigned": [], "signed": []}
    for signed in (False, True) * (1 if quick else 2):
        topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("bs"))
        ensure_topics(bootstrap, topics.specs())
        with tempfile.TemporaryDirectory() as tmp:
            env, verifier = {}, None
            if signed:
                key = new_signing_key()
                (Path(tmp) / "key.pem").write_bytes(key)
                env, verifier = {"CORRIDOR_SIGNING_KEY": str(Path(tmp) / "key.pem")}, Verifier([public_pem(key)])
            worker = tower_worker(settings, topics.prefix, Path(tmp), env, 0).start()
            try:
                got = latency_at(bootstrap, topics, corridor, worker, 5_000, 10 if quick else 30, verifier=verifier)
            finally:
                worker.stop()
                delete_prefixed(bootstrap, topics.prefix)
            runs["signed" if signed else "unsigned"].append(got)
    out: dict[str, Any] = {"runs_each": len(runs["signed"])}
    for mode, seen in runs.items():
        out[f"{mode}_p50_ms"] = statistics.median(r["p50_ms"] for r in seen)
        out[f"{mode}_p99_ms"] = statistics.median(r["p99_ms"] for r in seen)
        out[f"{mode}_advisories"] = sum(r["advisories_for_hazards"] for r in seen)
    out["forged_refused"] = sum(r["forged"] for r in runs["signed"])  # a tower's own signature refused: a defect
    out["signed_p99_added_ms"] = out["signed_p99_ms"] - out["unsigned_p99_ms"]
    return out


def run_signing(settings: Settings, quick: bool = False) -> dict[str, Any]:
    return {"per_advisory": _per_advisory(quick), "latency": _latency(settings, quick)}
