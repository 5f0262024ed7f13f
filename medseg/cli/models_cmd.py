"""`medseg models`: built-in models, a lab's own ($MEDSEG_HOME/models) and adapters, with sizes and hashes."""

from __future__ import annotations

import typer

from .._files import shown
from ._app import app, print_json, stdout


def list_models() -> list[dict]:
    """Registry entries with the shipped file's size and sha256 where there is one, then the
    ``medseg train`` folders in ``$MEDSEG_HOME/models`` (:func:`medseg.models.own.list_own_models`)."""
    from .._files import sha256_file
    from ..errors import CheckpointError
    from ..models.registry import REGISTRY, shipped_checkpoint, shipped_sha256

    rows = []
    for name, e in REGISTRY.items():
        row = {"name": name, "kind": "model", "description": e.description, "size_mb": None, "sha256": None, "source": f"your checkpoint: --model {name}=PATH" if e.kind == "sam" else "shipped"}
        if e.shipped_file:
            try:
                path = shipped_checkpoint(e.shipped_file)
                row.update(size_mb=round(path.stat().st_size / 1e6, 2), sha256=sha256_file(path), path=str(path), registry_sha256=shipped_sha256(e.shipped_file))
            except CheckpointError as err:
                row["source"] = f"missing: {err}"
        rows.append(row)
    from ..models.own import list_own_models

    return rows + list_own_models()  # a lab's own checkpoints in $MEDSEG_HOME/models: --model NAME


def list_adapters() -> list[dict]:
    try:
        from ..adapters import list_adapters as _la
    except ImportError:
        return []
    return _la()


@app.command("models")
def models_command(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """List built-in models, your own and adapters.

    Your own: medseg train folders in $MEDSEG_HOME/models (--model NAME loads NAME/best.safetensors);
    adapters: shipped and in $MEDSEG_HOME/adapters."""
    rows = list_models() + list_adapters()
    if as_json:
        print_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="medseg models and adapters")
    for col in ("name", "kind", "size (MB)", "sha256"):
        table.add_column(col)
    table.add_column("description / source", overflow="fold")  # a narrow terminal cut the folder's path to "/work/main/adapter…"
    default = next((r.get("sha256") for r in rows if r["kind"] == "model" and r["name"] == "default"), None)
    for r in rows:
        sha = (r.get("sha256") or "")[:16]
        base = r.get("base_model_sha256")
        other = (f"; made for another base model (sha256 {str(base)[:16]}), not the default: give that one with --model"
                 if r["kind"] == "adapter" and r.get("sha256") and default and base and base != default else "")
        table.add_row(escape(shown(r["name"])), r["kind"], "" if r.get("size_mb") is None else f"{r['size_mb']:.2f}", sha,
                      escape(shown(" ".join(filter(None, (_described(r), f"({r.get('source', '')})"))) + other
                                   + (f"; by name it is used instead of {r['hides']} (give that folder to use it)" if r.get("hides") else ""))))
    stdout.print(table)


def _described(row: dict) -> str:
    """A row's description; an adapter trained without ``--description`` is named by its
    structures, so a lab's own adapter is not a blank line beside its folder."""
    if row.get("description") or not row.get("structures"):
        return row.get("description") or ""
    return f"(no --description) structures: {', '.join(row['structures'])}"
