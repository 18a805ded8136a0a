"""Shell completion: `rulerun --completion bash|zsh` prints a script that completes options,
and targets from the Pipefile in use (tasks, rules' names, outputs that are no pattern) and
files. The script asks `rulerun --names` (hidden) for the Pipefile's names, honouring the -f
and -C already typed, so it always matches the Pipefile as it is now."""

from __future__ import annotations

import sys

_BASH = r'''# rulerun completion for bash: eval "$(rulerun --completion bash)"
_rulerun() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    case "$prev" in
        -f|--report) COMPREPLY=($(compgen -f -- "$cur")); return 0;;
        -C) COMPREPLY=($(compgen -d -- "$cur")); return 0;;
        -j) return 0;;
        --completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return 0;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "%OPTIONS%" -- "$cur"))
        return 0
    fi
    local where=() i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -f|-C) where+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}");;
        esac
    done
    local names
    names="$(rulerun "${where[@]}" --names 2>/dev/null)"
    COMPREPLY=($(compgen -W "$names" -- "$cur") $(compgen -f -- "$cur"))
    return 0
}
complete -o filenames -F _rulerun rulerun
'''

_ZSH = r'''#compdef rulerun
# rulerun completion for zsh: eval "$(rulerun --completion zsh)"
_rulerun() {
    local -a where names
    local i
    case "${words[CURRENT-1]}" in
        -f|--report) _files; return;;
        -C) _files -/; return;;
        -j) return;;
        --completion) compadd bash zsh; return;;
    esac
    if [[ "$PREFIX" == -* ]]; then
        compadd -- %OPTIONS%
        return
    fi
    for ((i = 2; i < CURRENT; i++)); do
        case "${words[i]}" in
            -f|-C) where+=("${words[i]}" "${words[i+1]}");;
        esac
    done
    names=(${(f)"$(rulerun "${where[@]}" --names 2>/dev/null)"})
    compadd -- $names
    _files
}
compdef _rulerun rulerun
'''


def script(shell: str, options: list[str]) -> str:
    """The completion script for `shell` ('bash' or 'zsh'), completing `options`."""
    return (_BASH if shell == "bash" else _ZSH).replace("%OPTIONS%", " ".join(options))


def print_names(options) -> int:
    """`rulerun --names`: the Pipefile's targets a person may type, one a line; nothing (and
    success) when there is no Pipefile or it does not load: completion must stay quiet."""
    from rulerun.app import load
    from rulerun.errors import RulerunError
    from rulerun.lang.patterns import compile_pattern, is_glob

    try:
        pipefile = load(options).pipefile
    except RulerunError:
        return 0
    names: dict[str, None] = {}
    for rule in pipefile.rules:
        if rule.is_task or rule.name_given:
            names[rule.name] = None
        for output in rule.outputs:
            if not is_glob(output.text) and not compile_pattern(output.text).names and "%" not in output.text:
                names[output.text] = None
    sys.stdout.write("".join(f"{name}\n" for name in names))
    return 0
