"""The embedded sample web: pages for the sample dumps' links, as a standard WARC.

A newcomer's `webtext build` has no network, so the fetch stage replays this
archive offline. Every page is generated here (no text is copied from
anywhere) and carries what the later stages must handle: navigation, headers,
sidebars, comments, footers and scripts around the article; exact and
near-duplicate articles on several sites; German and French pages; redirects
to Wikipedia; very short and boilerplate-only pages; a PDF behind an article
URL; dead links. Same seed → byte-identical WARC.
"""

from __future__ import annotations

import html
import io
import random
from dataclasses import dataclass
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from webtext_pipeline.links.sample import SAMPLE_SEED, SampleArticle, sample_articles
from webtext_pipeline.localfs import write_if_changed

WARC_DATE = "2018-02-01T00:00:00Z"

_NOUNS = (
    "council city report market river school bridge budget study team government company "
    "community hospital project plan program village museum library harbor station court "
    "festival committee researcher farmer teacher scientist minister engineer region"
).split()
_ADJECTIVES = (
    "new local national small large public early recent important difficult regional "
    "careful independent annual remote quiet historic modern familiar uncertain"
).split()
_VERBS = (
    "announced approved rejected examined delayed described reviewed expanded reduced "
    "supported questioned published opened closed funded measured"
).split()
_PLACES = (
    "the northern valley|the old harbor district|the city center|the coastal towns|"
    "the mountain villages|the river basin|the eastern suburbs|the capital"
).split("|")
_TEMPLATES = (
    "The {adj} {noun} in {place} {verb} the {noun2} on {day}, officials said.",
    "According to the {noun}, the {adj} {noun2} will take at least {num} years to finish.",
    "Residents of {place} have waited for a decision on the {noun2} since {year}.",
    "It is not clear whether the {adj} {noun} can pay for the {noun2} without help.",
    "Several members of the {noun} said they were worried about the cost of the {noun2}.",
    "\"We have to be honest about what this {noun2} can and cannot do,\" one {noun} said.",
    "The {noun} {verb} a {adj} plan that would change how the {noun2} works.",
    "Critics argue that the {adj} {noun2} does little for people who live in {place}.",
    "By {year}, about {num} percent of the {noun2} budget had already been spent.",
    "A spokesperson for the {noun} declined to comment on the {adj} {noun2}.",
    "Most of the {noun}s in {place} {verb} the idea when it was first proposed.",
    "The {noun2} was built in {year} and has been repaired {num} times since then.",
)
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_GERMAN = (
    "Der Stadtrat hat am Montag einen neuen Plan für den Hafen vorgestellt. "
    "Viele Bürger sind mit der Entscheidung nicht zufrieden und fordern mehr Informationen. "
    "Die Kosten für das Projekt werden auf mehrere Millionen Euro geschätzt. "
    "Nach Angaben der Verwaltung soll der Bau im nächsten Jahr beginnen. "
)
_FRENCH = (
    "Le conseil municipal a présenté lundi un nouveau projet pour le port de la ville. "
    "Beaucoup d'habitants ne sont pas satisfaits et demandent davantage d'informations. "
    "Le coût du projet est estimé à plusieurs millions d'euros selon la mairie. "
    "Les travaux devraient commencer l'année prochaine si le budget est approuvé. "
)


def _sentence(rng: random.Random) -> str:
    return rng.choice(_TEMPLATES).format(
        adj=rng.choice(_ADJECTIVES),
        noun=rng.choice(_NOUNS),
        noun2=rng.choice(_NOUNS),
        verb=rng.choice(_VERBS),
        place=rng.choice(_PLACES),
        day=rng.choice(_DAYS),
        year=rng.randrange(1990, 2017),
        num=rng.randrange(2, 60),
    )


def article_paragraphs(seed: str, n_paragraphs: int) -> list[str]:
    """Deterministic English article text: paragraphs of template sentences."""
    rng = random.Random(seed)
    return [
        " ".join(_sentence(rng) for _ in range(rng.randrange(3, 7))) for _ in range(n_paragraphs)
    ]


def _edit(paragraphs: list[str], rng: random.Random) -> list[str]:
    """A light edit, as a syndicating site makes: a few words changed, a line added."""
    edited = []
    for paragraph in paragraphs:
        words = paragraph.split()
        for _ in range(max(1, len(words) // 60)):
            words[rng.randrange(len(words))] = rng.choice(_ADJECTIVES)
        edited.append(" ".join(words))
    return edited + ["This story was first published by a partner newsroom."]


@dataclass(frozen=True)
class SamplePage:
    """One archived response: status, headers and body for one URL."""

    url: str
    status: int
    content_type: str
    body: bytes
    location: str = ""


def _page_html(article: SampleArticle, headline: str, paragraphs: list[str], lang: str,
               rng: random.Random) -> str:
    esc = html.escape
    site = article.site
    nav = "".join(f'<li><a href="/{s.lower()}">{s}</a></li>' for s in
                  ("Home", "World", "Politics", "Business", "Science", "Opinion", "Sports"))
    related = "".join(f'<li><a href="/r/{i}">{esc(_sentence(rng)[:60])}</a></li>'
                      for i in range(5))
    body = "".join(f"<p>{esc(p)}</p>" for p in paragraphs)
    comments = "".join(
        f'<div class="comment"><span class="user">reader{rng.randrange(999)}</span>'
        f"<p>{esc(rng.choice(['Great piece.', 'I disagree.', 'Thanks for sharing!', 'Source?']))}"
        "</p></div>" for _ in range(rng.randrange(2, 6))
    )
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{esc(headline)} | {esc(site)}</title>"
        '<script>window.dataLayer=[];function track(){return "analytics";}</script>'
        "<style>body{font-family:serif}.ad{display:block}</style></head><body>"
        f'<header><div class="logo">{esc(site)}</div><nav><ul>{nav}</ul></nav></header>'
        f'<div class="ad">Advertisement</div><main><article><h1>{esc(headline)}</h1>'
        f'<p class="byline">By Staff Writer · {2017 - rng.randrange(3)}</p>{body}</article>'
        f'<aside><h3>Related</h3><ul>{related}</ul><div class="newsletter">Sign up for our '
        "newsletter</div></aside>"
        f'<section id="comments"><h3>Comments</h3>{comments}</section></main>'
        "<footer><p>We use cookies to improve your experience. Accept all cookies.</p>"
        f'<p>© {esc(site)} · <a href="/privacy">Privacy policy</a> · '
        '<a href="/terms">Terms</a></p></footer></body></html>'
    )


def sample_pages(seed: int = SAMPLE_SEED) -> list[SamplePage]:
    """Every response of the sample web, in a stable order."""
    articles = sample_articles(seed)
    pages: list[SamplePage] = []
    for index, article in enumerate(articles):
        for spelling in article.spellings():  # as real sites do: redirect to the canonical URL
            requested = spelling.split("#", 1)[0]
            pages.append(SamplePage(requested, 301, "text/html", b"", location=article.url))
        rng = random.Random(f"{seed}-{article.url}")
        kind = index % 20
        headline = _sentence(rng).rstrip(".")[:90]
        paragraphs = article_paragraphs(article.url, rng.randrange(5, 12))
        lang = "en"
        if kind == 0:
            paragraphs, lang = [_GERMAN * 3, _GERMAN * 2], "de"
        elif kind == 1:
            paragraphs, lang = [_FRENCH * 3, _FRENCH * 2], "fr"
        elif kind == 2:
            paragraphs = [paragraphs[0].split(". ")[0] + "."]
        elif kind == 3:
            paragraphs = ["Subscribe to continue reading."]
        elif kind == 4:
            pages.append(SamplePage(article.url, 200, "application/pdf",
                                    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n"))
            continue
        elif kind == 5:
            pages.append(SamplePage(article.url, 404, "text/html; charset=utf-8",
                                    b"<html><body><h1>Not found</h1></body></html>"))
            continue
        elif kind == 6:
            target = f"https://en.wikipedia.org/wiki/{headline.split()[1].title()}"
            pages.append(SamplePage(article.url, 301, "text/html", b"", location=target))
            wiki = _page_html(SampleArticle("en.wikipedia.org", "wiki"), headline, paragraphs,
                              "en", rng)
            pages.append(SamplePage(target, 200, "text/html; charset=utf-8", wiki.encode()))
            continue
        elif kind in (7, 8):  # a copy of an article from another site, exact or edited
            source = articles[(index + 41) % len(articles)]
            paragraphs = article_paragraphs(source.url, 8)
            if kind == 8:
                paragraphs = _edit(paragraphs, rng)
        elif kind == 9:  # the original of kind 7/8 copies elsewhere gets the same length
            paragraphs = article_paragraphs(article.url, 8)
        page = _page_html(article, headline, paragraphs, lang, rng)
        pages.append(SamplePage(article.url, 200, "text/html; charset=utf-8", page.encode()))
    return pages


def _record(writer: WARCWriter, page: SamplePage) -> None:
    headers = [("Content-Type", page.content_type), ("Content-Length", str(len(page.body)))]
    if page.location:
        headers.append(("Location", page.location))
    reason = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}[page.status]
    http_headers = StatusAndHeaders(f"{page.status} {reason}", headers, protocol="HTTP/1.1")
    record = writer.create_warc_record(
        page.url,
        "response",
        payload=io.BytesIO(page.body),
        http_headers=http_headers,
        warc_headers_dict={"WARC-Date": WARC_DATE},
    )
    record.rec_headers.replace_header("WARC-Record-ID", f"<urn:webtext:sample:{page.url}>")
    writer.write_record(record)


def write_sample_warc(path: str | Path, seed: int = SAMPLE_SEED) -> Path:
    """Write the sample web as one gzipped WARC (a record per response); return its path."""
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    for page in sample_pages(seed):
        _record(writer, page)
    return write_if_changed(path, buffer.getvalue())
