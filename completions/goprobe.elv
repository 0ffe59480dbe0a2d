
use builtin;
use str;

set edit:completion:arg-completer[goprobe] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'goprobe'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'goprobe'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand inspect 'Show a Go binary''s build info, ELF facts and function table'
            cand convert 'Convert span NDJSON into OTLP, pprof, folded stacks, flame graphs, Chrome traces or text'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'goprobe;inspect'= {
            cand --pid 'Inspect the executable of a running process (/proc/N/exe); the report carries the pid'
            cand --match 'With --functions: only names containing this substring'
            cand --json 'One JSON object per binary (NDJSON); with --functions one object per function (name, address, offset, size; plus path when several binaries are given)'
            cand --functions 'List functions from pclntab instead of the summary: address, file offset, size, name'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;convert'= {
            cand --to 'Output format'
            cand -o 'Where to write; `-` or absent for stdout'
            cand --output 'Where to write; `-` or absent for stdout'
            cand --endpoint 'OTLP/HTTP collector base URL (spans go to URL/v1/traces); required with --to otlp'
            cand --batch-size 'Spans per OTLP request / OTLP-JSON line'
            cand --group-window 'pprof/folded/flamegraph: a trace is complete once none of its spans was seen in this many spans (bounds memory; later stragglers become roots)'
            cand --max-tries 'otlp: attempts per batch, including the first'
            cand --skip-invalid 'Skip malformed lines (counted on stderr) instead of stopping at the first'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;help'= {
            cand inspect 'Show a Go binary''s build info, ELF facts and function table'
            cand convert 'Convert span NDJSON into OTLP, pprof, folded stacks, flame graphs, Chrome traces or text'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'goprobe;help;inspect'= {
        }
        &'goprobe;help;convert'= {
        }
        &'goprobe;help;help'= {
        }
    ]
    $completions[$command]
}
