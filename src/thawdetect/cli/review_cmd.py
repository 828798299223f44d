"""``thawdetect review``: list, show and decide candidates; QGIS round trip; reviewer agreement."""

from __future__ import annotations

import json
from pathlib import Path

import click

_RUN = click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
#: What to do once nothing is pending (the review page, ``status`` and ``review`` say the same).
RESUME_HINT = "every candidate is decided: run the same 'thawdetect run' command again to resume"


@click.group("review")
def review() -> None:
    """Review a run's candidates (confirmed / rejected / unsure, probability high/medium/low).

    \b
    Examples:
      thawdetect review list runs/qilian
      thawdetect review show runs/qilian it01-0003
      thawdetect review decide runs/qilian it01-0003 confirmed -p high -r ann -n "fresh scarp"
      thawdetect review export runs/qilian review.gpkg   # edit 'decision' in QGIS, then
      thawdetect review import runs/qilian review.gpkg
      thawdetect review kappa runs/qilian ann bob
    """


@review.command("list")
@_RUN
@click.option("--status", default="pending", show_default=True,
              help="pending, confirmed, rejected, unsure, part_of or all.")  # fmt: skip
@click.option("--iteration", type=int, help="Only this iteration.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(run_dir: Path, status: str, iteration: int | None, as_json: bool) -> None:
    """List candidates in review order: agreeing detectors first, then review_priority (the
    chance of a confirmation learned from this run's earlier decisions, else the detectors'
    confidence, 0-1)."""
    from thawdetect.core.review.decisions import review_queue

    q = review_queue(run_dir, status=None if status == "all" else status, iteration=iteration)
    cols = ["candidate_id", "iteration", "n_detectors", "detectors", "review_priority", "score",
            "status", "probability"]  # fmt: skip
    if "area_ha" in q.columns:
        cols.append("area_ha")
    rows = q[cols]
    if as_json:
        click.echo(rows.to_json(orient="records", indent=2))
        return
    if len(rows) == 0:
        click.echo(f"no {status} candidates" + (f"; {RESUME_HINT}" if status == "pending" else ""))
        return
    click.echo(rows.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(f"{len(rows)} candidates")


@review.command("show")
@_RUN
@click.argument("candidate_id")
def show(run_dir: Path, candidate_id: str) -> None:
    """Show one candidate: attributes, every detector's evidence, evidence files, history."""
    from thawdetect.core.errors import InputError
    from thawdetect.core.review.decisions import history, open_ledger

    cands = open_ledger(run_dir).read("candidates")
    sel = cands[cands["candidate_id"] == candidate_id]
    if len(sel) == 0:
        raise InputError(run_dir, f"unknown candidate id '{candidate_id}'")
    c = sel.iloc[0]
    skip = {"geometry", "evidence_json", "series_json"}
    for key, value in c.items():
        if key not in skip and "__" not in str(key):
            click.echo(f"{key}: {value}")
    click.echo(f"bounds: {tuple(round(v, 1) for v in c.geometry.bounds)} ({cands.crs})")
    ev = json.loads(c["evidence_json"]) if isinstance(c.get("evidence_json"), str) else {}
    from thawdetect.web.state import own_evidence

    ev = own_evidence(ev, c.get("detectors"))  # the proposing detectors' fields, none empty
    for det, values in ev.items():
        click.echo(f"evidence {det}: " + ", ".join(f"{k}={v}" for k, v in dict(values).items()))
    from thawdetect.core.review.evidence import ensure_evidence

    files = ensure_evidence(run_dir, candidate_id)  # drawn now when the run made them lazily
    if files:
        click.echo(f"evidence files: {files[0].parent} ({', '.join(p.name for p in files)})")
    h = history(run_dir, candidate_id)
    if len(h):
        click.echo("history:")
        for _, r in h.iterrows():
            prob = f" ({r['probability']})" if r["probability"] else ""
            note = f" - {r['note']}" if r["note"] else ""
            what = f"part of {r['part_of']}" if r.get("part_of") else r["decision"]
            wkt = r.get("geometry_wkt")
            edited = " with an edited outline" if isinstance(wkt, str) and wkt.strip() else ""
            click.echo(f"  {r['timestamp']} {r['reviewer']}: {what}{prob}{edited}{note}")


@review.command("decide")
@_RUN
@click.argument("candidate_ids", nargs=-1, required=True)
@click.argument(
    "decision", type=click.Choice(["confirmed", "rejected", "unsure", "part_of", "same_as"])
)
@click.option("-p", "--probability", type=click.Choice(["high", "medium", "low"]),
              help="Probability class.")  # fmt: skip
@click.option("-n", "--note", default="", help="Free-text note.")
@click.option("-r", "--reviewer", envvar="THAWDETECT_REVIEWER", default="unknown",
              show_default=True, help="Your name (or THAWDETECT_REVIEWER).")  # fmt: skip
@click.option(
    "-g",
    "--geometry",
    "geometry_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Your corrected outline (GPKG/SHP/GeoJSON; polygon features are unioned).",
)
@click.option(
    "--part-of",
    "part_of",
    metavar="X",
    help="With part_of: the inventory_id (or candidate id) this is a fragment of.",
)
@click.option("--force", is_flag=True,
              help="Accept a --geometry far larger or smaller than the candidate.")  # fmt: skip
def decide_cmd(
    run_dir: Path,
    candidate_ids: tuple[str, ...],
    decision: str,
    probability: str | None,
    note: str,
    reviewer: str,
    geometry_file: Path | None,
    part_of: str | None,
    force: bool,
) -> None:
    """Record DECISION for one or more candidates (kept in the history).

    part_of (or same_as) X: the candidate is a fragment or duplicate of inventory feature X;
    its area joins X's outline (or --geometry becomes X's outline), X keeps its id, and the
    candidate never becomes a training negative.
    """
    from thawdetect.core.review.decisions import decide, open_ledger, read_outline_file

    geometry = None if geometry_file is None else read_outline_file(geometry_file)
    if geometry is not None and geometry.crs is None:  # say what is assumed, before it is used
        crs = open_ledger(run_dir).crs
        name = crs.to_string() if crs is not None else "unknown"
        click.echo(f"note: {geometry_file} has no CRS (a shapefile without .prj?): its "
                   f"coordinates are taken in the run's CRS {name}", err=True)  # fmt: skip
    rows = decide(run_dir, list(candidate_ids), decision, probability=probability, note=note,
                  reviewer=reviewer, geometry=geometry, part_of=part_of,
                  force=force)  # fmt: skip
    what = rows["decision"].iloc[0] if len(rows) else decision
    extra = f" of {part_of}" if part_of else ""
    outline = " with the reviewed outline" if geometry is not None else ""
    click.echo(f"{len(rows)} candidate(s) {what}{extra} by {reviewer}{outline}")


@review.command("undo")
@_RUN
@click.option(
    "-r",
    "--reviewer",
    envvar="THAWDETECT_REVIEWER",
    help="Undo this reviewer's latest decision (default: the latest of anyone).",
)
def undo_cmd(run_dir: Path, reviewer: str | None) -> None:
    """Undo the latest decision: its candidates return to their previous status and outline."""
    from thawdetect.core.review.decisions import undo_last_decision

    rows = undo_last_decision(run_dir, reviewer=reviewer)
    if rows is None:
        click.echo("nothing to undo")
        return
    click.echo(f"undone for {', '.join(rows['candidate_id'])} ({rows['note'].iloc[0]})")


@review.command("export")
@_RUN
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--status", default="pending", show_default=True,
              help="Which candidates: pending, unsure, ... or all.")  # fmt: skip
def export_cmd(run_dir: Path, out: Path, status: str) -> None:
    """Write candidates to OUT.gpkg with editable decision/probability/note/reviewer fields."""
    from thawdetect.core.review.decisions import open_ledger, review_queue
    from thawdetect.core.review.qgis import export_for_qgis
    from thawdetect.core.safe_paths import check_output_file, writing_output

    open_ledger(run_dir)  # a damaged ledger is named before anything is written
    check_output_file(out, what="review export", run_dir=run_dir)
    if not len(review_queue(run_dir, status=None if status == "all" else status)):
        hint = f": {RESUME_HINT}" if status == "pending" else ""
        click.echo(f"nothing to export: no {status} candidates{hint} ({out} not written)")
        return
    with writing_output(out, "review export"):
        path = export_for_qgis(run_dir, out, status=None if status == "all" else status)
    click.echo(f"written {path}: fill 'decision' (confirmed/rejected/unsure) and 'probability'"
               " (high/medium/low) in QGIS, then 'thawdetect review import'")  # fmt: skip


@review.command("import")
@_RUN
@click.argument("edited", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-r", "--reviewer", envvar="THAWDETECT_REVIEWER",
              help="Name for rows with an empty reviewer field (default 'qgis').")  # fmt: skip
@click.option("--prefer", type=click.Choice(["newer", "file"]), default="newer",
              show_default=True,
              help="A candidate another reviewer decided after EDITED was exported: keep that "
                   "newer decision, or apply the file's.")  # fmt: skip
def import_cmd(run_dir: Path, edited: Path, reviewer: str | None, prefer: str) -> None:
    """Apply the decisions filled in EDITED (one transaction; any bad row applies nothing)."""
    from thawdetect.core.review.decisions import open_ledger
    from thawdetect.core.review.qgis import import_from_qgis
    from thawdetect.core.run.rundir import writing_to_run

    open_ledger(run_dir)  # a damaged ledger is named before anything is written
    with writing_to_run(run_dir):  # refused while a run is going
        rows = import_from_qgis(run_dir, edited, reviewer=reviewer, prefer=prefer)
    stale = rows.attrs.get("conflicts") or []
    if stale:
        named = ", ".join(f"{c} ({d} by {r} at {t})" for c, r, d, t in stale[:5])
        more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
        kept = (
            "kept the newer decisions (--prefer file applies the file's)"
            if prefer == "newer"
            else "applied the file's decisions over them (--prefer file)"
        )
        click.echo(f"warning: {edited} was exported before another reviewer decided {named}"
                   f"{more}; {kept}", err=True)  # fmt: skip
    counts = rows["decision"].value_counts().to_dict() if len(rows) else {}
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing"
    click.echo(f"applied {len(rows)} decisions ({summary})")


@review.command("kappa")
@_RUN
@click.argument("reviewer_a")
@click.argument("reviewer_b")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def kappa_cmd(run_dir: Path, reviewer_a: str, reviewer_b: str, as_json: bool) -> None:
    """Cohen's kappa between two reviewers on the candidates both decided."""
    from thawdetect.core.review.agreement import reviewer_agreement

    ag = reviewer_agreement(run_dir, reviewer_a, reviewer_b)
    if as_json:
        click.echo(json.dumps(ag, indent=2))
        return
    observed = (
        "n/a" if ag["observed_agreement"] is None else f"{100 * ag['observed_agreement']:.1f} %"
    )
    kappa = (
        f"{ag['kappa']:.3f}"
        if ag["kappa_defined"]
        else f"undefined ({ag['kappa_undefined_reason']})"
    )
    click.echo(
        f"{reviewer_a} vs {reviewer_b}: {ag['n']} common candidates, observed agreement "
        f"{observed}, Cohen's kappa {kappa}"
    )
    for pair, n in sorted(ag["confusion"].items()):
        a, b = pair.split("|")
        click.echo(f"  {a:>9} / {b:<9} {n}")


from thawdetect.cli.serve_cmd import serve  # noqa: E402  (review serve: the browser workspace)

review.add_command(serve)
