"""Every relative link of README.md and docs/*.md resolves: the file exists and a `#anchor` names a heading."""
import glob
import os.path as osp
import re
from typing import Dict, List

import pytest

from tests.helpers import REPO

FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", flags=re.M)
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=[\"']([^\"']+)[\"']", flags=re.I)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", flags=re.M)


def doc_files() -> List[str]:
    return [osp.join(REPO, "README.md"), *sorted(glob.glob(osp.join(REPO, "docs", "*.md")))]


def prose(text: str) -> str:
    """The text a reader sees as prose: code blocks and inline code hold no links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: str) -> set:
    """Every heading anchor of a Markdown file; repeated headings get -1, -2, ... as on GitHub."""
    with open(path, encoding="utf-8") as f:
        text = FENCE.sub("", f.read())
    seen: Dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(text: str) -> List[str]:
    text = prose(text)
    found = MARKDOWN_LINK.findall(text) + REFERENCE_LINK.findall(text) + IMG_SRC.findall(text)
    return [link for link in found if not re.match(r"^[a-z][a-z0-9+.-]*:", link, flags=re.I)]  # no URLs


def broken_links(path: str) -> List[str]:
    """Each relative link of `path` whose file or heading anchor does not exist, with the reason."""
    with open(path, encoding="utf-8") as f:
        links = relative_links(f.read())
    broken = []
    for link in links:
        target, _, anchor = link.partition("#")
        target_path = osp.normpath(osp.join(osp.dirname(path), target)) if target else path
        if not osp.exists(target_path):
            broken.append(f"{link}: no file {osp.relpath(target_path, REPO)}")
        elif anchor and target_path.endswith(".md") and anchor not in anchors(target_path):
            broken.append(f"{link}: no heading with anchor #{anchor} in {osp.relpath(target_path, REPO)}")
    return broken


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: osp.relpath(p, REPO))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_docs_index_reaches_every_docs_file():
    with open(osp.join(REPO, "docs", "README.md"), encoding="utf-8") as f:
        linked = {osp.basename(link.partition("#")[0]) for link in relative_links(f.read())}
    files = {osp.basename(p) for p in doc_files()[1:]} - {"README.md"}
    assert files - linked == set()


def test_the_checker_reports_a_missing_file_a_missing_anchor_and_a_missing_image(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section: with `code` (and more)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md#a-section-with-code-and-more) [fine too](#page) [web](https://example.org/x.md)\n"
        "[gone](missing.md) [bad anchor](other.md#no-such-section) <img src=\"lost.png\" width=\"10\">\n"
        "`[in code](not_checked.md)`\n\n```\n[in a block](not_checked_either.md)\n```\n")
    reasons = broken_links(str(page))
    assert len(reasons) == 3
    assert reasons[0].startswith("missing.md: no file")
    assert reasons[1].startswith("other.md#no-such-section: no heading with anchor #no-such-section")
    assert reasons[2].startswith("lost.png: no file")


def test_slug_matches_github_for_this_projects_headings():
    assert slug("The paper's four benchmarks (real data)") == "the-papers-four-benchmarks-real-data"
    assert slug("One run: UCF -> HMDB") == "one-run-ucf---hmdb"
    assert slug("NTU RGB+D") == "ntu-rgbd"
    assert slug("Result: the main job over 3 seeds") == "result-the-main-job-over-3-seeds"
