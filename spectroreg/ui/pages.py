"""
The pages, as pure functions from what the reader found to L{Markup}.

No I/O here. Every value goes through L{html}/L{escape}; no page has an
inline script, an inline style or a style attribute (the default
Content-Security-Policy allows only our own files).
"""

import json
import time
from urllib.parse import urlencode

from spectroreg.ui.markup import Markup, escape, html, join, url_path

# Referrers listed on a manifest page (signatures can pile up).
MAX_REFERRERS = 200

KINDS = {"image": "image", "index": "multi-platform index", "artifact": "artifact", "other": "manifest"}


class Links:
    """
    URLs of the pages, under ``<prefix>/ui/``.

    @param prefix: ``http.prefix`` ("" or "/a/b").
    @param versions: static file name -> content version (cache busting).
    """

    def __init__(self, prefix="", versions=None):
        self.base = prefix + "/ui/"
        self.versions = versions or {}

    def _with(self, path, query):
        query = [(k, v) for k, v in query if v not in (None, "")]
        return path + ("?" + urlencode(query) if query else "")

    def home(self, q=None, last=None, n=None):
        return self._with(self.base, [("q", q), ("n", n), ("last", last)])

    def repository(self, name, last=None, deleted=None, n=None):
        path = self.base + "r/" + url_path(*name.split("/"))
        return self._with(path, [("n", n), ("last", last), ("deleted", deleted)])

    def manifest(self, name, reference, raw=False):
        path = self.base + "m/" + url_path(*name.split("/")) + "/" + url_path(str(reference))
        return self._with(path, [("raw", "1" if raw else None)])

    def delete(self, name=None, reference=None):
        return self._with(self.base + "delete", [("repository", name), ("reference", reference)])

    def static(self, filename):
        return self._with(self.base + "static/" + filename, [("v", self.versions.get(filename))])


def human_size(size):
    """Bytes in binary units, e.g. "1.5 MiB"; "—" when unknown."""
    if size is None:
        return "\u2014"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "B":
                return "{} B".format(int(value))
            return "{:.1f} {}".format(value, unit)
        value /= 1024


def human_time(seconds):
    """POSIX seconds as "2026-12-02 19:45 UTC"; "—" when unknown."""
    if not seconds:
        return "\u2014"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def short_time(text):
    """An RFC 3339 time from a config, shortened to minutes; as given if odd."""
    if not text:
        return "\u2014"
    if len(text) >= 16 and text[10] == "T":
        return text[:10] + " " + text[11:16] + " UTC" if text.endswith("Z") else text[:10] + " " + text[11:16]
    return text


def _time_cell(text):
    """Date and time, each kept on one line, free to wrap between them."""
    date, sep, rest = text.partition(" ")
    if not sep:
        return escape(text)
    return html('<span class="nw">{d}</span> <span class="nw">{r}</span>', d=date, r=rest)


def short_digest(digest):
    text = str(digest)
    algorithm, _, hex_ = text.partition(":")
    return "{}:{}".format(algorithm, hex_[:12]) if hex_ else text


def digest_html(digest, link=None):
    """A short digest; the whole one in its title and for the copy button."""
    full = str(digest)
    short = short_digest(full)
    inner = html('<code class="digest" title="{full}">{short}</code>', full=full, short=short)
    if link is not None:
        inner = html('<a href="{link}">{inner}</a>', link=link, inner=inner)
    return html('<span class="copyable" data-copy="{full}">{inner}</span>', full=full, inner=inner)


def command_html(command):
    return html('<span class="copyable" data-copy="{c}"><code class="command">{c}</code></span>', c=command)


def layout(links, title, body, crumbs=(), notice=None):
    """The whole document around C{body} (L{Markup})."""
    trail = join(html('<span class="sep">/</span> <a href="{href}">{text}</a> ', href=href, text=text)
                 for href, text in crumbs)
    notice_html = html('<p class="notice" role="status">{n}</p>', n=notice) if notice else Markup("")
    return html(
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="same-origin">'
        "<title>{title} \u00b7 spectroreg</title>"
        '<link rel="icon" href="{icon}" type="image/svg+xml">'
        '<link rel="stylesheet" href="{css}"><script src="{js}" defer></script></head>\n'
        '<body><header><nav><a class="brand" href="{home}">spectroreg</a> {trail}</nav></header>\n'
        "<main>{notice}{body}</main>\n"
        "</body></html>\n",
        title=title, icon=links.static("favicon.svg"), css=links.static("ui.css"), js=links.static("ui.js"), home=links.home(),
        trail=trail, notice=notice_html, body=body,
    )


def _pager(next_href, first_href):
    parts = []
    if first_href:
        parts.append(html('<a href="{h}">\u2190 first page</a>', h=first_href))
    if next_href:
        parts.append(html('<a rel="next" href="{h}">next page \u2192</a>', h=next_href))
    if not parts:
        return Markup("")
    return html('<nav class="pager">{p}</nav>', p=join(parts, " "))


def _count_text(total, q):
    text = "{} repositor{}".format(total, "y" if total == 1 else "ies")
    if q:
        text += " match{} \u201c{}\u201d".format("es" if total == 1 else "", q)
    return text


def index_page(links, summaries, total, q, last, more, n=None):
    """
    @param summaries: L{RepositorySummary}s of this page.
    @param total: how many repositories match the filter.
    @param n: the page size asked for (kept in the pager's links), or None.
    """
    rows = []
    for s in summaries:
        partial = Markup(" <abbr title=\"from the first tags only\">\u2265</abbr>") if s.partial else Markup("")
        rows.append(html(
            '<tr><td><a href="{href}">{name}</a></td><td class="num">{tags}</td>'
            '<td class="time">{pushed}</td><td class="num">{partial}{size}</td></tr>',
            href=links.repository(s.name), name=s.name, tags=s.tag_count,
            pushed=human_time(s.pushed), partial=partial if s.size is not None else Markup(""),
            size=human_size(s.size),
        ))
    if rows:
        table = html(
            '<table class="list"><thead><tr><th>Repository</th><th class="num">Tags</th>'
            '<th>Last push</th><th class="num">Size</th></tr></thead><tbody>{rows}</tbody></table>',
            rows=join(rows),
        )
    else:
        table = html('<p class="empty">{t}</p>', t="No repository matches." if q else "No repositories yet.")
    next_href = links.home(q=q, last=summaries[-1].name, n=n) if more and summaries else None
    first_href = links.home(q=q, n=n) if last else None
    body = html(
        "<h1>Repositories</h1>"
        '<form class="filter" method="get" action="{action}" role="search">'
        '<label for="q">Filter</label> <input id="q" name="q" type="search" value="{q}" '
        'placeholder="part of a name" autocomplete="off"> <button type="submit">Apply</button></form>'
        '<p class="count">{count}</p>{table}{pager}',
        action=links.home(), q=q or "",
        count=_count_text(total, q),
        table=table, pager=_pager(next_href, first_href),
    )
    return layout(links, "Repositories", body)


def _kind_html(view):
    label = KINDS.get(view.kind, "manifest")
    extra = Markup("")
    if view.artifact_type:
        extra = html('<br><span class="artifact-type">{t}</span>', t=view.artifact_type)
    return html('<span class="kind kind-{kind}" title="{mt}">{label}</span>{extra}',
                kind=view.kind, mt=view.media_type, label=label, extra=extra)


def _platforms_html(view):
    if not view.platforms:
        return Markup("\u2014")
    return join((html('<span class="platform">{p}</span>', p=p) for p in view.platforms), " ")


def _delete_button(links, name, reference, label):
    return html('<a class="button danger" href="{href}">{label}</a>',
                href=links.delete(name, str(reference)), label=label)


def repository_page(links, name, rows, tag_count, pull_host, last, more, can_delete, notice=None, n=None):
    """
    @param rows: L{TagRow}s of this page.
    @param pull_host: ``host[:port]`` for pull commands.
    """
    out = []
    for row in rows:
        view = row.view
        actions = html('<div class="row-actions">{b}</div>', b=_delete_button(links, name, row.tag, "delete")) \
            if can_delete else Markup("")
        out.append(html(
            '<tr><td class="tag"><a href="{mhref}">{tag}</a>{actions}</td><td>{digest}</td><td>{kind}</td>'
            '<td>{platforms}</td><td class="num" title="{bytes}">{size}</td><td class="time">{created}</td>'
            '<td class="time">{pushed}</td>'
            '<td class="pull">{pull}</td></tr>',
            mhref=links.manifest(name, row.tag), tag=row.tag,
            digest=digest_html(view.digest, links.manifest(name, view.digest)),
            kind=_kind_html(view), platforms=_platforms_html(view),
            bytes="" if view.size is None else "{} bytes".format(view.size), size=human_size(view.size),
            created=_time_cell(short_time(row.created)), pushed=_time_cell(human_time(row.pushed)),
            pull=command_html("docker pull {}/{}:{}".format(pull_host, name, row.tag)),
            actions=actions,
        ))
    if out:
        table = html(
            '<div class="scroll"><table class="list tags"><thead><tr><th>Tag</th><th>Digest</th><th>Type</th>'
            '<th>Platforms</th>'
            '<th class="num">Size</th><th>Created</th><th>Pushed</th><th>Pull</th></tr></thead>'
            "<tbody>{rows}</tbody></table></div>",
            rows=join(out),
        )
    else:
        table = html('<p class="empty">{t}</p>', t="No tags.")
    next_href = links.repository(name, last=rows[-1].tag, n=n) if more and rows else None
    first_href = links.repository(name, n=n) if last else None
    body = html(
        '<h1 class="name">{name}</h1><p class="count">{count}</p>{table}{pager}',
        name=name, count="{} tag{}".format(tag_count, "" if tag_count == 1 else "s"),
        table=table, pager=_pager(next_href, first_href),
    )
    return layout(links, name, body, crumbs=[(links.repository(name), name)], notice=notice)


def _definition_list(items):
    entries = [html("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v) for k, v in items if v not in (None, "", [])]
    return html('<dl class="facts">{e}</dl>', e=join(entries)) if entries else Markup("")


def _map_table(mapping, cls):
    if not mapping:
        return Markup("")
    rows = join(html("<tr><th>{k}</th><td>{v}</td></tr>", k=k, v=v) for k, v in sorted(mapping.items()))
    return html('<table class="kv {cls}"><tbody>{rows}</tbody></table>', cls=cls, rows=rows)


def _words(words):
    if not words:
        return None
    return html("<code>{w}</code>", w=json.dumps(words, ensure_ascii=False))


def manifest_page(links, name, reference, view, config, referrers, pull_host, can_delete):
    """
    @param reference: what the page was asked for (tag or digest, str).
    @param config: L{spectroreg.ui.reader.summarise_config} or None.
    @param referrers: descriptors (dicts) whose subject this manifest is.
    """
    digest = str(view.digest)
    sections = [_facts(links, name, view, digest, pull_host)]
    if config is not None:
        sections.append(_configuration(config))
    if view.kind in ("image", "artifact") and view.manifest is not None:
        sections.append(_layers(view))
    if view.kind == "index":
        sections.append(_platforms(links, name, view))
    if config is not None and config.get("history"):
        sections.append(_history(config["history"]))
    if view.annotations:
        sections.append(html("<h2>Annotations</h2>{t}", t=_map_table(view.annotations, "annotations")))
    if referrers:
        sections.append(_referrers(links, name, digest, referrers))
    actions = [html('<a class="button" href="{h}">raw JSON</a>', h=links.manifest(name, digest, raw=True))]
    if can_delete:
        actions.append(_delete_button(links, name, digest, "delete manifest"))
    sections.append(html('<p class="actions">{a}</p>', a=join(actions, " ")))
    title = "{}@{}".format(name, short_digest(digest)) if reference == digest else "{}:{}".format(name, reference)
    body = html('<h1 class="name">{t}</h1>{s}', t=title, s=join(sections))
    return layout(links, title, body, crumbs=[(links.repository(name), name),
                                               (links.manifest(name, reference), reference if reference != digest
                                                else short_digest(digest))])


def _facts(links, name, view, digest, pull_host):
    return _definition_list([
        ("Digest", digest_html(digest)),
        ("Type", _kind_html(view)),
        ("Media type", html("<code>{t}</code>", t=view.media_type)),
        ("Manifest size", "{} bytes".format(len(view.record.body))),
        ("Compressed size", None if view.size is None else "{} ({} bytes)".format(human_size(view.size), view.size)),
        ("Refers to", digest_html(view.subject, links.manifest(name, view.subject)) if view.subject else None),
        ("Pull", command_html("docker pull {}/{}@{}".format(pull_host, name, digest))),
    ])


def _configuration(config):
    return html("<h2>Configuration</h2>{dl}{labels}",
                dl=_definition_list([
                    ("Platform", config.get("platform")),
                    ("Created", short_time(config.get("created")) if config.get("created") else None),
                    ("Entrypoint", _words(config.get("entrypoint"))),
                    ("Command", _words(config.get("cmd"))),
                    ("Working directory", config.get("workdir")),
                    ("User", config.get("user")),
                ]),
                labels=html("<h3>Labels</h3>{t}", t=_map_table(config.get("labels"), "labels"))
                if config.get("labels") else Markup(""))


def _layers(view):
    rows = join(html('<tr><td class="num">{i}</td><td>{d}</td><td><code>{t}</code></td>'
                     '<td class="num" title="{b} bytes">{s}</td></tr>',
                     i=i + 1, d=digest_html(layer.digest), t=layer.media_type, b=layer.size,
                     s=human_size(layer.size))
                for i, layer in enumerate(view.layers))
    return html(
        '<h2>Layers</h2><table class="list layers"><thead><tr><th class="num">#</th><th>Digest</th>'
        '<th>Media type</th><th class="num">Size</th></tr></thead><tbody>{rows}</tbody></table>',
        rows=rows)


def _platforms(links, name, view):
    rows = join(html('<tr><td>{p}</td><td>{d}</td><td><code>{t}</code></td><td class="num">{s}</td></tr>',
                     p=(platform or "\u2014") + (" (attestation)" if attestation else ""),
                     d=digest_html(child.digest, links.manifest(name, child.digest)),
                     t=child.media_type, s=human_size(child.size))
                for child, platform, attestation in view.children)
    return html(
        '<h2>Platforms</h2><table class="list platforms"><thead><tr><th>Platform</th><th>Digest</th>'
        '<th>Media type</th><th class="num">Manifest size</th></tr></thead><tbody>{rows}</tbody></table>',
        rows=rows)


def _history(history):
    rows = join(html('<tr><td>{c}</td><td><code>{b}</code></td><td>{e}</td></tr>',
                     c=short_time(h.get("created")), b=h.get("created_by") or "",
                     e="empty" if h.get("empty_layer") else "")
                for h in history)
    return html(
        '<h2>History</h2><table class="list history"><thead><tr><th>Created</th><th>Created by</th>'
        "<th></th></tr></thead><tbody>{rows}</tbody></table>", rows=rows)


def _referrers(links, name, digest, referrers):
    rows = []
    for descriptor in referrers[:MAX_REFERRERS]:
        annotations = descriptor.get("annotations") if isinstance(descriptor.get("annotations"), dict) else {}
        rows.append(html(
            '<tr><td class="artifact-type">{a}</td><td>{d}</td><td><code>{t}</code></td>'
            '<td class="num">{s}</td><td>{n}</td></tr>',
            a=descriptor.get("artifactType") or "\u2014",
            d=digest_html(descriptor.get("digest"), links.manifest(name, descriptor.get("digest"))),
            t=descriptor.get("mediaType") or "", s=human_size(descriptor.get("size")
                                                              if isinstance(descriptor.get("size"), int) else None),
            n=join((html("<div>{k}: {v}</div>", k=k, v=v if isinstance(v, str) else json.dumps(v))
                    for k, v in sorted(annotations.items()))),
        ))
    return html(
        '<h2>Referrers</h2><table class="list referrers"><thead><tr><th>Artifact type</th><th>Digest</th>'
        '<th>Media type</th><th class="num">Size</th><th>Annotations</th></tr></thead>'
        "<tbody>{rows}</tbody></table>{more}", rows=join(rows),
        more=html('<p class="count">{m}</p>', m="The first {} of {}; all of them: GET /v2/{}/referrers/{}".format(
            MAX_REFERRERS, len(referrers), name, digest)) if len(referrers) > MAX_REFERRERS else Markup(""))


def raw_page(links, name, reference, body):
    """The manifest's JSON, pretty-printed when it parses, as text."""
    try:
        text = json.dumps(json.loads(body.decode("utf-8")), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, ValueError, RecursionError):
        text = body.decode("utf-8", "replace")
    title = "{} {} (JSON)".format(name, short_digest(reference))
    content = html('<h1 class="name">{t}</h1><pre class="json">{j}</pre>', t=title, j=text)
    return layout(links, title, content, crumbs=[(links.repository(name), name),
                                                 (links.manifest(name, reference), short_digest(reference))])


def confirm_page(links, name, reference, is_digest, tags, token):
    """The confirmation before a delete; the form carries the CSRF token."""
    if is_digest:
        what = html("the manifest {d} from {n}", d=digest_html(reference), n=name)
        more = html("<p>Tags pointing at it are removed too{t}.</p>",
                    t=(": " + ", ".join(tags)) if tags else "")
    else:
        what = html("the tag <strong>{t}</strong> from {n}", t=reference, n=name)
        more = html("<p>{p}</p>", p="The manifest stays, reachable by its digest.")
    body = html(
        '<h1>Delete?</h1><p>Delete {what}?</p>{more}'
        '<form class="confirm" method="post" action="{action}">'
        '<input type="hidden" name="repository" value="{name}">'
        '<input type="hidden" name="reference" value="{reference}">'
        '<input type="hidden" name="token" value="{token}">'
        '<button type="submit" class="danger">Delete</button> <a class="button" href="{back}">Cancel</a></form>',
        what=what, more=more, action=links.delete(), name=name, reference=reference, token=token,
        back=links.manifest(name, reference) if is_digest else links.repository(name),
    )
    return layout(links, "Delete?", body, crumbs=[(links.repository(name), name)])


def error_page(links, status, message, authenticated=True):
    """An error; without authentication nothing links anywhere (no stylesheet either)."""
    if not authenticated:
        return html(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{s}</title></head>"
            "<body><h1>{s}</h1><p>{m}</p></body></html>\n", s=status, m=message)
    body = html('<h1>{s}</h1><p class="error">{m}</p><p><a href="{h}">All repositories</a></p>',
                s=status, m=message, h=links.home())
    return layout(links, str(status), body)


__all__ = ["Links", "index_page", "repository_page", "manifest_page", "raw_page", "confirm_page",
           "error_page", "human_size", "human_time", "short_digest"]
