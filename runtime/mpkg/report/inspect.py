"""`mpkg inspect PKG --html OUT.html`: one package as a page.

Like `inspect`, the page describes a package without hashing its weights: it reads the
manifest, checks the signatures against the keys given, and reads one file, the card, whose
bytes are checked against their digest before anything of it is shown. Every value is
untrusted text (spec/report.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.trust.signatures import Envelope, TrustedKey, check_envelope, check_statement
from mpkg.report import page

from ..errors import MpkgError
from .card import split_card
from .charts import Node, layered_graph
from .markdown import render_markdown
from .text import shorten
from .views import contract_rows, facts, flatten, numeric, value_text

MAX_CARD_BYTES = 1024 * 1024
MAX_CHAIN = 32


@dataclass(frozen=True)
class SignatureView:
    """One signature as the page shows it: verified, not checked, or invalid."""

    keyid: str
    status: str  # "verified", "not checked" or "invalid"
    reason: str


@dataclass(frozen=True)
class Signatures:
    """The envelope's signatures and a note on the envelope as a whole."""

    entries: tuple[SignatureView, ...]
    note: str  # the envelope as a whole: unsigned, unreadable, or what the statement names


def check_signatures(pkg: PackageFile, manifest: Manifest, keys: Sequence[TrustedKey]) -> Signatures:
    """Each signature checked against ``keys``; a key not given is "not checked", never "invalid"."""
    if pkg.signatures_bytes is None:
        return Signatures((), "The package is not signed.")
    try:
        envelope = Envelope.from_bytes(pkg.signatures_bytes)
    except MpkgError as exc:
        return Signatures((), f"The signature envelope is unreadable: {'; '.join(exc.reasons())}")
    m = manifest
    mismatch = check_statement(envelope.payload, m.name, m.version, m.digest, m.format_version)
    views = []
    for c in check_envelope(envelope, keys, mismatch is None):
        if not c.trusted:
            why = "no trusted key was given" if not keys else "signed by a key that is not among the keys given"
            views.append(SignatureView(c.keyid, "not checked", why))
        else:
            views.append(SignatureView(c.keyid, "verified" if c.valid else "invalid", c.reason))
    note = mismatch or (
        "Checked against the keys given." if keys else "Not checked: pass --key PUB to check signatures."
    )
    return Signatures(tuple(views), note)


@dataclass(frozen=True)
class CardView:
    """The rendered card, or the problem that kept it from rendering."""

    path: str
    html: Markup | None
    generated: Markup | None
    problem: str | None
    cut: bool = False


def read_card(pkg: PackageFile, manifest: Manifest) -> CardView:
    """The card's Markdown, rendered only when its bytes match the manifest's digest."""
    path = value_text(manifest.card.get("path", ""))
    entry = manifest.file(path)
    member = pkg.by_name.get(entry.member_name) if entry else None
    if entry is None or member is None:
        return CardView(path, None, None, f"{path}: not in the package")
    if member.size != entry.size:
        return CardView(path, None, None, f"{path}: {member.size} bytes in the archive, the manifest says {entry.size}")
    if entry.size > MAX_CARD_BYTES:
        return CardView(path, None, None, f"{path}: {entry.size} bytes, over the report's {MAX_CARD_BYTES} byte limit")
    data = pkg.read(member)
    if hash_bytes(data) != entry.digest:
        return CardView(path, None, None, f"{path}: content does not match its digest (modified or corrupted)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return CardView(path, None, None, f"{path}: not UTF-8 text")
    parts = split_card(text)
    body, cut = render_markdown(parts.body)
    generated = render_markdown(parts.generated)[0] if parts.generated else None
    return CardView(path, body, generated, None, cut)


def base_chain(manifest: Manifest, bases: Sequence[Manifest]) -> list[tuple[str, str, Manifest | None]]:
    """(version, digest, manifest if given) for each link of the base chain, nearest first."""
    by_digest = {str(b.digest): b for b in bases}
    chain: list[tuple[str, str, Manifest | None]] = []
    link = manifest.base
    seen = {str(manifest.digest)}
    while isinstance(link, Mapping) and len(chain) < MAX_CHAIN:
        digest = value_text(link.get("digest", ""))
        known = by_digest.get(digest)
        chain.append((value_text(link.get("version", "")), digest, known))
        if known is None or digest in seen:
            break
        seen.add(digest)
        link = known.base
    return chain


def _short_digest(text: str) -> str:
    algorithm, _, hexpart = text.partition(":")
    return f"{algorithm}:{hexpart[:12]}…" if hexpart else shorten(text, 24)


def lineage_graph(manifest: Manifest, chain: Sequence[tuple[str, str, Manifest | None]]) -> Markup:
    """The lineage graph: data, base and parent packages pointing at this one."""
    lineage = manifest.lineage if isinstance(manifest.lineage, Mapping) else {}
    data = [d for d in lineage.get("data") or [] if isinstance(d, Mapping)]
    data_nodes = []
    for i, d in enumerate(data):
        path = value_text(d.get("path", d.get("uri", "?")))
        digest_key = next((k for k in ("digest", "sha256", "md5", "hash") if k in d), None)
        digest = f"{digest_key} {value_text(d[digest_key])}" if digest_key else "no digest recorded"
        lines = [shorten(digest, 40)]
        if isinstance(d.get("size"), int):
            lines.append(page.human_size(d["size"]))
        data_nodes.append(Node(f"data{i}", path.rsplit("/", 1)[-1], tuple(lines), tip=f"{path}\n{digest}"))
    git = lineage.get("git") if isinstance(lineage.get("git"), Mapping) else None
    params = flatten(lineage.get("params") or {}) if lineage.get("params") else []
    training_lines = []
    if git:
        commit = value_text(git.get("commit", "?"))
        training_lines.append(f"commit {commit[:12]}" + (" (dirty)" if git.get("dirty") else ""))
    else:
        training_lines.append("commit not recorded")
    training_lines.append(f"{len(params)} parameters" if params else "parameters not recorded")
    training_lines += [f"{k} = {v}" for k, v in params[:2]]
    tip = "\n".join(f"{k} = {v}" for k, v in params[:40])
    layers: list[list[Node]] = []
    edges: list[tuple[str, str]] = []
    if not data_nodes:
        data_nodes.append(Node("data", "data", ("no data files recorded",), "node-missing"))
    layers.append(data_nodes)
    edges += [(n.id, "train") for n in data_nodes]
    layers.append([Node("train", "training run", tuple(training_lines), tip=tip)])
    self_node = Node("self", f"{manifest.name} {manifest.version}", (_short_digest(str(manifest.digest)),), "node-self")
    layers.append([self_node])
    edges.append(("train", "self"))
    previous = "self"
    for i, (version, digest, known) in enumerate(chain):
        heading = f"{known.name} {version}" if known else f"base {version}"
        where = "read from the package given" if known else "not given: --base PKG"
        kind = "node" if known else "node-missing"
        layers.append([Node(f"base{i}", heading, (_short_digest(digest), where), kind, tip=digest)])
        edges.append((previous, f"base{i}"))
        previous = f"base{i}"
    return layered_graph(layers, edges, f"Lineage of {manifest.name} {manifest.version}")


def describe_page(
    pkg: PackageFile, manifest: Manifest, keys: Sequence[TrustedKey] = (), bases: Sequence[Manifest] = ()
) -> str:
    """The inspect report as HTML text."""
    lineage: Mapping[str, Any] = manifest.lineage if isinstance(manifest.lineage, Mapping) else {}
    chain = base_chain(manifest, bases)
    env = manifest.environment if isinstance(manifest.environment, Mapping) else {}
    packages = [p for p in env.get("packages") or [] if isinstance(p, Mapping)]
    git = lineage.get("git") if isinstance(lineage.get("git"), Mapping) else {}
    return page.render(
        "inspect.html.j2",
        title=f"{manifest.name} {manifest.version}",
        m=manifest,
        size=pkg.size,
        signatures=check_signatures(pkg, manifest, keys),
        card=read_card(pkg, manifest),
        card_facts=facts(manifest.card.get("metadata")),
        contract=contract_rows(manifest.contract.to_json()),
        metrics=list(numeric(lineage.get("metrics") or {}).items()),
        params=flatten(lineage.get("params") or {}),
        data=[flatten(d) for d in lineage.get("data") or [] if isinstance(d, Mapping)],
        git=flatten(git),
        builder=flatten(lineage.get("builder") or {}),
        chain=chain,
        graph=lineage_graph(manifest, chain),
        files=manifest.files,
        environment=env,
        packages=packages,
        code=manifest.raw.get("code") if isinstance(manifest.raw.get("code"), Mapping) else None,
    )


__all__ = ["CardView", "SignatureView", "Signatures", "base_chain", "check_signatures", "describe_page", "read_card"]
