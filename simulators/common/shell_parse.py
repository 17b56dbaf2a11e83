"""The grammar of the simulated shell: a lexer and a recursive-descent parser for the part of
bash that batch scripts use (simple commands, ``;``/``&&``/``||``/``|``, redirections and
here-documents, ``for``/``while``/``if``, ``{ }`` and ``( )`` groups).

Words are kept raw (quotes included) and expanded when they run, so ``false; echo $?``
prints 1.  Every node remembers its script line for bash's ``line N:`` messages."""

from __future__ import annotations

from dataclasses import dataclass, field

OPERATORS = ("&&", "||", ";;", ";", "|", "&", "(", ")")
REDIRECTS = ("<<-", "<<", ">>", "&>>", "&>", ">&", "<&", ">", "<")
RESERVED = {"if", "then", "elif", "else", "fi", "for", "in", "do", "done", "while", "until", "{", "}", "!"}
MAX_SCRIPT = 1 << 20  # a script longer than this is refused before parsing


class ShellSyntaxError(ValueError):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


@dataclass
class Tok:
    kind: str  # WORD | OP | REDIR | NL | EOF
    text: str
    line: int
    fd: int | None = None  # REDIR: the io number before it (2> ...)
    heredoc: str | None = None  # REDIR <<: the body
    quoted: bool = False  # REDIR <<: the delimiter was quoted (no expansion in the body)


@dataclass
class Redirect:
    op: str
    fd: int
    target: str  # a raw word, or the here-document's body
    expand: bool = True


@dataclass
class Simple:
    words: list[str]
    assigns: list[tuple[str, str]]
    redirects: list[Redirect]
    line: int


@dataclass
class Pipeline:
    commands: list[Command]
    negate: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]] = field(default_factory=list)


@dataclass
class Block:
    items: list[AndOr]


@dataclass
class For:
    name: str
    words: list[str] | None  # None: "$@"
    body: Block
    line: int


@dataclass
class While:
    cond: Block
    body: Block
    until: bool
    line: int


@dataclass
class If:
    branches: list[tuple[Block, Block]]
    otherwise: Block | None
    line: int


@dataclass
class Group:
    body: Block
    subshell: bool
    redirects: list[Redirect]
    line: int


Command = Simple | For | While | If | Group


# -- lexer ----------------------------------------------------------------------------------
def _skip_quoted(text: str, i: int, line: int) -> tuple[int, int]:
    """Index just past the quoted/substituted section starting at ``text[i]``, and the line
    count it spans."""
    c = text[i]
    start_line = line
    if c == "'":
        j = text.find("'", i + 1)
        if j < 0:
            raise ShellSyntaxError("unexpected EOF while looking for matching `''", start_line)
        return j + 1, line + text.count("\n", i, j)
    if c == '"':
        j = i + 1
        while j < len(text):
            if text[j] == "\\":
                j += 2
                continue
            if text[j] == '"':
                return j + 1, line + text.count("\n", i, j)
            if text.startswith("$(", j) or text[j] == "`":
                j, _ = _skip_quoted(text, j, line)
                continue
            j += 1
        raise ShellSyntaxError("unexpected EOF while looking for matching `\"'", start_line)
    if c == "`":
        j = text.find("`", i + 1)
        if j < 0:
            raise ShellSyntaxError("unexpected EOF while looking for matching ``'", start_line)
        return j + 1, line + text.count("\n", i, j)
    # $( ... ) or ${ ... }: balanced, quotes inside skipped
    open_, close = ("(", ")") if text[i + 1] == "(" else ("{", "}")
    depth, j = 0, i + 1
    while j < len(text):
        ch = text[j]
        if ch in "'\"`" and open_ == "(":
            j, _ = _skip_quoted(text, j, line)
            continue
        if ch == "\\":
            j += 2
            continue
        if ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return j + 1, line + text.count("\n", i, j)
        j += 1
    raise ShellSyntaxError(f"unexpected EOF while looking for matching `{close}'", start_line)


def tokenize(text: str) -> list[Tok]:
    if len(text) > MAX_SCRIPT:
        raise ShellSyntaxError("script too long", 1)
    toks: list[Tok] = []
    pending: list[Tok] = []  # here-documents whose body starts on the next line
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == "\n":
            i, line = i + 2, line + 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "\n":
            toks.append(Tok("NL", "\n", line))
            i, line = i + 1, line + 1
            for doc in pending:
                i, line = _heredoc_body(text, i, line, doc)
            pending.clear()
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        # an io number: digits right before a redirection (2>, 2>>, 1>&2)
        j = i
        while j < n and text[j].isdigit():
            j += 1
        fd = None
        if j > i and j < n and text[j] in "<>":
            fd, i = int(text[i:j]), j
        op = next((r for r in REDIRECTS if text.startswith(r, i)), None)
        if op is not None and (fd is None or not op.startswith("&")):
            tok = Tok("REDIR", op, line, fd=fd)
            toks.append(tok)
            i += len(op)
            if op in ("<<", "<<-"):
                while i < n and text[i] in " \t":
                    i += 1
                start = i
                while i < n and text[i] not in " \t\n;&|<>()":
                    i = _skip_quoted(text, i, line)[0] if text[i] in "'\"" else i + 1
                raw = text[start:i]
                if not raw:
                    raise ShellSyntaxError("syntax error near unexpected token `newline'", line)
                tok.quoted = any(q in raw for q in "'\"\\")
                tok.text = op
                tok.heredoc = raw.replace("'", "").replace('"', "").replace("\\", "")
                pending.append(tok)
            continue
        op = next((o for o in OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            toks.append(Tok("OP", op, line))
            i += len(op)
            continue
        # a word: up to unquoted whitespace or an operator character
        start, start_line = i, line
        while i < n:
            ch = text[i]
            if ch in " \t\r\n;&|<>()":
                break
            if ch == "\\":
                i += 2
                continue
            if ch in "'\"`" or (ch == "$" and i + 1 < n and text[i + 1] in "({"):
                i, line = _skip_quoted(text, i, line)
                continue
            i += 1
        toks.append(Tok("WORD", text[start:i], start_line))
    if pending:
        for doc in pending:
            doc.heredoc, doc.text = "", doc.text  # an unterminated here-document reads to EOF
    toks.append(Tok("EOF", "", line))
    return toks


def _heredoc_body(text: str, i: int, line: int, doc: Tok) -> tuple[int, int]:
    delim = doc.heredoc or ""
    body: list[str] = []
    while i < len(text):
        j = text.find("\n", i)
        end = len(text) if j < 0 else j
        raw = text[i:end]
        i, line = end + 1, line + 1
        check = raw.lstrip("\t") if doc.text == "<<-" else raw
        if check == delim:
            doc.heredoc = "".join(body)
            return i, line
        body.append(check + "\n")
    doc.heredoc = "".join(body)
    return i, line


# -- parser ---------------------------------------------------------------------------------
class Parser:
    def __init__(self, toks: list[Tok]):
        self.toks = toks
        self.i = 0

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def _word_is(self, *words: str) -> bool:
        return self.tok.kind == "WORD" and self.tok.text in words

    def _unexpected(self) -> ShellSyntaxError:
        t = self.tok
        shown = "newline" if t.kind in ("NL", "EOF") else t.text
        return ShellSyntaxError(f"syntax error near unexpected token `{shown}'", t.line)

    def _skip_newlines(self) -> None:
        while self.tok.kind == "NL" or (self.tok.kind == "OP" and self.tok.text == ";"):
            self.i += 1

    def _expect_word(self, word: str) -> None:
        self._skip_newlines()
        if not self._word_is(word):
            raise self._unexpected()
        self.i += 1

    def script(self) -> Block:
        block = self.block(())
        if self.tok.kind != "EOF":
            raise self._unexpected()
        return block

    def block(self, enders: tuple[str, ...]) -> Block:
        items: list[AndOr] = []
        while True:
            self._skip_newlines()
            t = self.tok
            if t.kind == "EOF" or (t.kind == "WORD" and t.text in enders) or (t.kind == "OP" and t.text == ")"):
                return Block(items)
            if t.kind == "OP" and t.text in ("&&", "||", "|", ";;", "&"):
                raise self._unexpected()
            items.append(self.and_or())
            if self.tok.kind == "OP" and self.tok.text in (";", "&"):
                self.i += 1  # background jobs run in order: the simulation has no concurrency
            elif self.tok.kind not in ("NL", "EOF") and not (
                (self.tok.kind == "WORD" and self.tok.text in enders) or self.tok.text == ")"
            ):
                raise self._unexpected()

    def and_or(self) -> AndOr:
        node = AndOr(self.pipeline())
        while self.tok.kind == "OP" and self.tok.text in ("&&", "||"):
            op = self.tok.text
            self.i += 1
            while self.tok.kind == "NL":
                self.i += 1
            node.rest.append((op, self.pipeline()))
        return node

    def pipeline(self) -> Pipeline:
        negate = False
        if self._word_is("!"):
            negate = True
            self.i += 1
        cmds = [self.command()]
        while self.tok.kind == "OP" and self.tok.text == "|":
            self.i += 1
            while self.tok.kind == "NL":
                self.i += 1
            cmds.append(self.command())
        return Pipeline(cmds, negate)

    def command(self) -> Command:
        t = self.tok
        if t.kind == "WORD":
            if t.text == "for":
                return self._for()
            if t.text in ("while", "until"):
                return self._while()
            if t.text == "if":
                return self._if()
            if t.text == "{":
                self.i += 1
                body = self.block(("}",))
                self._expect_word("}")
                return Group(body, False, self._redirects(), t.line)
            if t.text in ("then", "elif", "else", "fi", "do", "done", "}", "in"):
                raise self._unexpected()
        if t.kind == "OP" and t.text == "(":
            self.i += 1
            body = self.block(())
            if not (self.tok.kind == "OP" and self.tok.text == ")"):
                raise self._unexpected()
            self.i += 1
            return Group(body, True, self._redirects(), t.line)
        return self._simple()

    def _redirects(self) -> list[Redirect]:
        out: list[Redirect] = []
        while self.tok.kind == "REDIR":
            out.append(self._redirect())
        return out

    def _redirect(self) -> Redirect:
        t = self.tok
        self.i += 1
        if t.text in ("<<", "<<-"):
            return Redirect("<<", 0, t.heredoc or "", expand=not t.quoted)
        if self.tok.kind != "WORD":
            raise self._unexpected()
        target = self.tok.text
        self.i += 1
        default_fd = 0 if t.text in ("<", "<&") else 1
        return Redirect(t.text, t.fd if t.fd is not None else default_fd, target)

    def _simple(self) -> Simple:
        line = self.tok.line
        words: list[str] = []
        assigns: list[tuple[str, str]] = []
        redirects: list[Redirect] = []
        while True:
            t = self.tok
            if t.kind == "REDIR":
                redirects.append(self._redirect())
            elif t.kind == "WORD" and (words or t.text not in RESERVED or t.text in ("in",)):
                name, eq, value = t.text.partition("=")
                if not words and eq and name.isidentifier():
                    assigns.append((name, value))
                else:
                    words.append(t.text)
                self.i += 1
            else:
                break
        if not (words or assigns or redirects):
            raise self._unexpected()
        return Simple(words, assigns, redirects, line)

    def _for(self) -> For:
        line = self.tok.line
        self.i += 1
        if self.tok.kind != "WORD" or not self.tok.text.isidentifier():
            raise self._unexpected()
        name = self.tok.text
        self.i += 1
        words: list[str] | None = None
        while self.tok.kind == "NL":
            self.i += 1
        if self._word_is("in"):
            self.i += 1
            words = []
            while self.tok.kind == "WORD":
                words.append(self.tok.text)
                self.i += 1
        self._expect_word("do")
        body = self.block(("done",))
        self._expect_word("done")
        return For(name, words, body, line)

    def _while(self) -> While:
        line, until = self.tok.line, self.tok.text == "until"
        self.i += 1
        cond = self.block(("do",))
        self._expect_word("do")
        body = self.block(("done",))
        self._expect_word("done")
        return While(cond, body, until, line)

    def _if(self) -> If:
        line = self.tok.line
        self.i += 1
        branches: list[tuple[Block, Block]] = []
        otherwise: Block | None = None
        while True:
            cond = self.block(("then",))
            self._expect_word("then")
            body = self.block(("elif", "else", "fi"))
            branches.append((cond, body))
            if self._word_is("elif"):
                self.i += 1
                continue
            if self._word_is("else"):
                self.i += 1
                otherwise = self.block(("fi",))
            self._expect_word("fi")
            return If(branches, otherwise, line)


def parse(text: str) -> Block:
    return Parser(tokenize(text)).script()
