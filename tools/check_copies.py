"""Does this project's code follow another project's source? The project's own copy check.

    python tools/check_copies.py OTHER_TREE [--ours DIR] [--paths P ...] [--threshold 0.4] [--no-lines]
                                            [--min-lines 6]

Three views of the same question, each printed as rows "ours ~ theirs":

1. functions: every function here is paired with the function of OTHER_TREE that holds the largest part of
   its runs of 5 consecutive tokens. Comments, docstrings, blank lines and line breaks are not tokens, so a
   body whose statements were re-wrapped or joined still counts as the same; renamed steps do not hide much
   either, since most runs hold attribute names, calls and operators. Rows at or above --threshold.
2. messages: string literals (f-strings as templates, `{...}` as `{}`) of three or more words that occur in
   both trees, and runs of six words that two literals share wherever they stand in them.
3. lines (when the `duplicates` tool is on PATH): runs of 6 or more shared lines, as the earlier
   tools/check_engine_copy.sh listed them; only rows that pair our file with theirs are shown.

What must match by design is listed in ALLOWED below and printed with its reason instead of counted:
train.py's reset_cfg (a table from CLI flags to Dassl's config keys), the config-key table of
framework/builtin/config.py, and the log lines that Dassl's tools/parse_test_res.py reads.

Exit status: 0 when nothing but allowed rows was found, 1 otherwise, 2 on a usage error. Line rows that are
alike only in shape (`self.a = a` runs) are shown for a look but do not count.
"""
import argparse
import ast
import difflib
import io
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional, Set, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_PATHS = ("framework", "trainers", "models", "video", "datasets", "analysis", "train.py", "defaults.py")
RUN_LENGTH = 5
# Only a function's body counts (its signature is API), and a body of fewer tokens (`return self._x`, a call
# and a return) says nothing either way.
MIN_BODY_TOKENS = 25
MIN_WORDS = 3  # words with a letter in them; placeholders and punctuation do not count
MIN_CHARS = 12
PHRASE_WORDS = 6  # a run of this many words shared by two messages counts, wherever it stands in them
SKIPPED_FOLDERS = {"__pycache__", "build", "dist"}  # build/lib of an installed tree is a copy of the package

# What is allowed to match, and why. Functions by (our file, function name); messages by their template.
ALLOWED_FUNCTIONS = {
    ("train.py", "reset_cfg"): "flag-to-key table: Dassl's CLI flags set these config keys",
}
# Dassl's tools/parse_test_res.py skips a log until its end signal and then reads `* <keyword>: <number>%`.
ALLOWED_MESSAGES = {
    "Finish training": "parse_test_res end signal (after_train)",
    "=> result": "parse_test_res end signal with --test-log (evaluator block header)",
    "* accuracy: {}%": "parse_test_res field (--keyword accuracy, the default)",
    "* error: {}%": "parse_test_res field (--keyword error)",
    "* macro_f1: {}%": "parse_test_res field (--keyword macro_f1)",
}
ALLOWED_LINE_FILES = {
    "framework/builtin/config.py": "config-key table: the keys and defaults must be Dassl's",
}

_SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                   tokenize.ENCODING, tokenize.ENDMARKER}


@dataclass(frozen=True)
class Function:
    file: str  # relative to its tree
    name: str  # Class.method or function
    first: int
    last: int
    runs: FrozenSet[Tuple[str, ...]]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.first}-{self.last} {self.name}"


@dataclass(frozen=True)
class Message:
    file: str
    line: int
    template: str
    phrases: FrozenSet[str]


# --------------------------------------------------------------------------- reading a tree
def python_files(root: str, paths: Optional[Iterable[str]] = None) -> Iterator[str]:
    """Relative paths of the .py files under root (or under the given files/folders of it)."""
    starts = [osp.join(root, p) for p in paths] if paths else [root]
    for start in starts:
        if osp.isfile(start) and start.endswith(".py"):
            yield osp.relpath(start, root)
        for folder, dirs, files in os.walk(start):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
            for name in sorted(files):
                if name.endswith(".py"):
                    yield osp.relpath(osp.join(folder, name), root)


def _has_docstring(node: ast.AST) -> bool:
    body = getattr(node, "body", None)
    return bool(body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str)


def _docstring_lines(node: ast.AST) -> Set[int]:
    if not _has_docstring(node):
        return set()
    return set(range(node.body[0].lineno, node.body[0].end_lineno + 1))


def _body_start(node: ast.AST) -> Optional[Tuple[int, int]]:
    """(line, column) where a function's first statement after its docstring starts."""
    statements = node.body[1:] if _has_docstring(node) else node.body
    return (statements[0].lineno, statements[0].col_offset) if statements else None


def _qualified_functions(tree: ast.AST) -> Iterator[Tuple[str, ast.AST]]:
    def visit(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, prefix + child.name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def read_file(root: str, rel: str) -> Tuple[List[Function], List[Message]]:
    try:
        with open(osp.join(root, rel), encoding="utf-8", errors="replace") as f:
            source = f.read()
        tree = ast.parse(source)
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type not in _SKIPPED_TOKENS and t.string != ";"]  # `a; b` is layout, as a line break is
    except (SyntaxError, tokenize.TokenError, ValueError):
        return [], []  # Python 2 files and templates in other trees: not comparable, not ours to judge
    docstrings: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docstrings |= _docstring_lines(node)
    functions = []
    for name, node in _qualified_functions(tree):
        start = _body_start(node)
        if start is None:
            continue
        words = [t.string for t in tokens
                 if start <= t.start and t.start[0] <= node.end_lineno and t.start[0] not in docstrings]
        if len(words) >= MIN_BODY_TOKENS:
            runs = frozenset(tuple(words[i:i + RUN_LENGTH]) for i in range(len(words) - RUN_LENGTH + 1))
            functions.append(Function(rel, name, node.lineno, node.end_lineno, runs))
    return functions, _messages(tree, rel, docstrings)


def _template(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = re.sub(r"\{[^{}]*\}", "{}", node.value)
    elif isinstance(node, ast.JoinedStr):
        text = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values)
    else:
        return None
    return " ".join(text.split())


def _is_phrase(text: str) -> bool:
    return len(text) >= MIN_CHARS and sum(bool(re.search("[A-Za-z]", w)) for w in text.split()) >= MIN_WORDS


def _messages(tree: ast.AST, rel: str, docstrings: Set[int]) -> List[Message]:
    found = []
    inside_fstring = {id(p) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for p in n.values}
    for node in ast.walk(tree):
        if id(node) in inside_fstring or getattr(node, "lineno", None) in docstrings:
            continue
        template = _template(node)
        if not template:
            continue
        words = template.split()
        # the whole message, however short, when it is a sentence or an allowed log line; and every run of
        # PHRASE_WORDS words, which finds a sentence that was copied into a longer or shorter message
        phrases = {template} if _is_phrase(template) or template in ALLOWED_MESSAGES else set()
        phrases |= {" ".join(words[i:i + PHRASE_WORDS]) for i in range(len(words) - PHRASE_WORDS + 1)}
        if phrases:
            found.append(Message(rel, node.lineno, template, frozenset(phrases)))
    return found


def read_tree(root: str, paths: Optional[Iterable[str]] = None) -> Tuple[List[Function], List[Message]]:
    functions: List[Function] = []
    messages: List[Message] = []
    for rel in python_files(root, paths):
        f, m = read_file(root, rel)
        functions += f
        messages += m
    return functions, messages


# --------------------------------------------------------------------------- comparing
def nearest_functions(ours: List[Function], theirs: List[Function], threshold: float
                      ) -> List[Tuple[float, Function, Function]]:
    """(share, ours, theirs) for each of our functions whose nearest function of theirs holds at least
    `threshold` of its token runs, largest share first."""
    holders: Dict[Tuple[str, ...], List[int]] = defaultdict(list)
    for index, function in enumerate(theirs):
        for run in function.runs:
            holders[run].append(index)
    rows = []
    for function in ours:
        hits = Counter(i for run in function.runs for i in holders.get(run, ()))
        if not hits:
            continue
        index, count = hits.most_common(1)[0]
        share = count / len(function.runs)
        if share >= threshold:
            rows.append((share, function, theirs[index]))
    return sorted(rows, key=lambda row: (-row[0], row[1].file, row[1].first))


def shared_messages(ours: List[Message], theirs: List[Message]) -> List[Tuple[Message, Message, str]]:
    """(ours, theirs, the longest run of words they share) for every message of ours with a phrase theirs
    also has."""
    first_place: Dict[str, Message] = {}
    for message in theirs:
        for phrase in message.phrases:
            first_place.setdefault(phrase, message)
    rows = []
    for message in ours:
        other = next((first_place[p] for p in sorted(message.phrases, key=len, reverse=True) if p in first_place),
                     None)
        if other is not None:
            rows.append((message, other, _longest_common_run(message.template, other.template)))
    return sorted(rows, key=lambda row: (row[0].file, row[0].line))


def _longest_common_run(a: str, b: str) -> str:
    words_a, words_b = a.split(), b.split()
    match = difflib.SequenceMatcher(None, words_a, words_b, autojunk=False).find_longest_match(
        0, len(words_a), 0, len(words_b))
    return " ".join(words_a[match.a:match.a + match.size])


def allowed_function(function: Function) -> Optional[str]:
    return ALLOWED_FUNCTIONS.get((function.file, function.name.split(".")[-1]))


def allowed_message(message: Message) -> Optional[str]:
    return ALLOWED_MESSAGES.get(message.template)


# --------------------------------------------------------------------------- line runs (the duplicates tool)
def line_pairs(ours_root: str, paths: Iterable[str], theirs_root: str, min_lines: int = 6) -> Tuple[List[str], str]:
    """Rows of `duplicates` that pair one of our files with one of theirs, and a note when it could not run.

    Our files and their .py files are copied into one scratch folder in which theirs are committed to git and
    ours are not, so `duplicates --change` lists only the pairs that have one side in our tree, however many
    pairs the other tree holds inside itself."""
    if shutil.which("duplicates") is None or shutil.which("git") is None:
        return [], "line runs: skipped (the `duplicates` tool or git is not on PATH)"
    with tempfile.TemporaryDirectory() as work:
        for rel in python_files(theirs_root):
            _copy(osp.join(theirs_root, rel), osp.join(work, "theirs", rel))
        git = ["git", "-C", work, "-c", "user.name=check", "-c", "user.email=check@localhost"]
        subprocess.run(git + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "theirs"], check=True)
        subprocess.run(git + ["commit", "-q", "--no-verify", "-m", "theirs"], check=True)
        for rel in python_files(ours_root, paths):
            _copy(osp.join(ours_root, rel), osp.join(work, "ours", rel))
        report = subprocess.run(["duplicates", "--change", "--repo", work, "--min-lines", str(min_lines), "--most",
                                 "200", "--seconds", "300"], capture_output=True, text=True, cwd=work).stdout
    rows = [line.strip() for line in report.splitlines()
            if re.match(r"\s*D\d+ ", line) and "ours/" in line and "theirs/" in line]
    notes = [line for line in report.splitlines() if line.startswith(("incomplete:", "(+"))]
    return rows, "\n".join(notes)


def _allowed_row(row: str, spans: List[Tuple[str, int, int, str]]) -> Optional[str]:
    """Why a line-run row is allowed: our side lies in an allowed file or inside an allowed function."""
    match = re.search(r"ours/(\S+):(\d+)-(\d+)", row)
    if not match:
        return None
    rel, first, last = match.group(1), int(match.group(2)), int(match.group(3))
    if rel in ALLOWED_LINE_FILES:
        return ALLOWED_LINE_FILES[rel]
    return next((why for file, start, end, why in spans if file == rel and start <= first and last <= end), None)


def _copy(source: str, target: str) -> None:
    os.makedirs(osp.dirname(target), exist_ok=True)
    shutil.copyfile(source, target)


# --------------------------------------------------------------------------- report
def check(ours_root: str, theirs_root: str, paths: Iterable[str], threshold: float, lines: bool,
          min_lines: int = 6) -> int:
    paths = [p for p in paths if osp.exists(osp.join(ours_root, p))]
    if not paths:
        print(f"none of the paths to check exist under {ours_root}", file=sys.stderr)
        return 2
    our_functions, our_messages = read_tree(ours_root, paths)
    their_functions, their_messages = read_tree(theirs_root)
    counted = allowed = 0
    for share, mine, other in nearest_functions(our_functions, their_functions, threshold):
        reason = allowed_function(mine)
        print(f"{share:.2f}  {mine.where}  ~  {other.where}" + (f"   [allowed: {reason}]" if reason else ""))
        counted, allowed = counted + (not reason), allowed + bool(reason)
    for mine, other, phrase in shared_messages(our_messages, their_messages):
        reason = allowed_message(mine)
        print(f"text  {mine.file}:{mine.line}  ~  {other.file}:{other.line}  {phrase!r}"
              + (f"   [allowed: {reason}]" if reason else ""))
        counted, allowed = counted + (not reason), allowed + bool(reason)
    if lines:
        rows, note = line_pairs(ours_root, paths, theirs_root, min_lines)
        spans = [(f.file, f.first, f.last, allowed_function(f)) for f in our_functions if allowed_function(f)]
        for row in rows:
            reason = _allowed_row(row, spans)
            shape_only = " shape" in row
            tag = f"   [allowed: {reason}]" if reason else ("   [same shape only: a look, not counted]"
                                                             if shape_only else "")
            print(row + tag)
            counted += not (reason or shape_only)
            allowed += bool(reason)
        if note:
            print(note)
    print(f"{counted} finding(s) to mend, {allowed} allowed (functions at >= {threshold:.2f} of their "
          f"{RUN_LENGTH}-token runs, shared messages{', line runs' if lines else ''})")
    return 1 if counted else 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("other_tree", help="the other project's checkout or export")
    parser.add_argument("--ours", default=REPO, help="this project's root (default: this checkout)")
    parser.add_argument("--paths", nargs="+", default=list(DEFAULT_PATHS),
                        help="folders/files of ours to check (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=0.4, help="smallest share of token runs to report")
    parser.add_argument("--no-lines", action="store_true", help="skip the line-run view (duplicates)")
    parser.add_argument("--min-lines", type=int, default=6, help="shared lines that make a line-run row")
    args = parser.parse_args(argv)
    if not osp.isdir(args.other_tree):
        print(f'"{args.other_tree}" is not a folder: pass the other project\'s checkout or export',
              file=sys.stderr)
        return 2
    return check(osp.abspath(args.ours), osp.abspath(args.other_tree), args.paths, args.threshold,
                 lines=not args.no_lines, min_lines=args.min_lines)


if __name__ == "__main__":
    sys.exit(main())
