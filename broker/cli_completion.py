"""``superfed completion bash|zsh``: a completion script made from the parser itself, so a
command or option added to the CLI completes without anyone editing a script by hand."""

from __future__ import annotations

import argparse


def _tree(p: argparse.ArgumentParser, path: str = "") -> dict[str, list[str]]:
    """For each command path ("", "jobs", "token create", ...) the words that may follow it:
    subcommands, options and an option's fixed choices."""
    words: list[str] = []
    out: dict[str, list[str]] = {}
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                words.append(name)
                out.update(_tree(child, f"{path} {name}".strip()))
        else:
            words += action.option_strings
            if action.choices and not action.option_strings:  # a positional such as `sim {sfapi,...}`
                words += [str(c) for c in action.choices]
    out[path] = sorted(set(words))
    return out


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    tree = _tree(parser)
    cases = "\n".join(f'        "{path}") words="{" ".join(w)}" ;;' for path, w in sorted(tree.items()))
    # the command path is the words typed so far that are commands (not options or values)
    body = f"""_superfed_complete() {{
    local cur path w
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    path=""
    for w in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$w" in -*) continue ;; esac
        case " $(_superfed_words "${{path:+$path }}$w" 1) " in *" __known__ "*) path="${{path:+$path }}$w" ;; esac
    done
    COMPREPLY=( $(compgen -W "$(_superfed_words "$path")" -- "$cur") )
}}
_superfed_words() {{
    local words=""
    case "$1" in
{cases}
        *) [ -n "$2" ] && return ;;
    esac
    if [ -n "$2" ]; then echo __known__; else echo "$words"; fi
}}
"""
    register = "complete -o default -F _superfed_complete superfed\n"
    if shell == "bash":
        return body + register
    # zsh runs the bash function through its bashcompinit layer
    return "autoload -U +X bashcompinit && bashcompinit\n" + body + register
