
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'goprobe' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'goprobe'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'goprobe' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a Go binary''s build info, ELF facts and function table')
            [CompletionResult]::new('convert', 'convert', [CompletionResultType]::ParameterValue, 'Convert span NDJSON into OTLP, pprof, folded stacks, flame graphs, Chrome traces or text')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'goprobe;inspect' {
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Inspect the executable of a running process (/proc/N/exe); the report carries the pid')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'With --functions: only names containing this substring')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per binary (NDJSON); with --functions one object per function (name, address, offset, size; plus path when several binaries are given)')
            [CompletionResult]::new('--functions', '--functions', [CompletionResultType]::ParameterName, 'List functions from pclntab instead of the summary: address, file offset, size, name')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;convert' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write; `-` or absent for stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write; `-` or absent for stdout')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'OTLP/HTTP collector base URL (spans go to URL/v1/traces); required with --to otlp')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'Spans per OTLP request / OTLP-JSON line')
            [CompletionResult]::new('--group-window', '--group-window', [CompletionResultType]::ParameterName, 'pprof/folded/flamegraph: a trace is complete once none of its spans was seen in this many spans (bounds memory; later stragglers become roots)')
            [CompletionResult]::new('--max-tries', '--max-tries', [CompletionResultType]::ParameterName, 'otlp: attempts per batch, including the first')
            [CompletionResult]::new('--skip-invalid', '--skip-invalid', [CompletionResultType]::ParameterName, 'Skip malformed lines (counted on stderr) instead of stopping at the first')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;help' {
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a Go binary''s build info, ELF facts and function table')
            [CompletionResult]::new('convert', 'convert', [CompletionResultType]::ParameterValue, 'Convert span NDJSON into OTLP, pprof, folded stacks, flame graphs, Chrome traces or text')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'goprobe;help;inspect' {
            break
        }
        'goprobe;help;convert' {
            break
        }
        'goprobe;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
