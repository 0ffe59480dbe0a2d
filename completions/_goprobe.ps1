
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
            [CompletionResult]::new('offsets', 'offsets', [CompletionResultType]::ParameterValue, 'Struct-field offsets a probe needs (from DWARF, else the offsets table), or any field given')
            [CompletionResult]::new('attach', 'attach', [CompletionResultType]::ParameterValue, 'Attach eBPF probes to a Go binary or process and stream completed calls as NDJSON')
            [CompletionResult]::new('record', 'record', [CompletionResultType]::ParameterValue, 'Record spans (NDJSON, goprobe''s span schema) from a Go binary, a process, or attach''s output on stdin')
            [CompletionResult]::new('convert', 'convert', [CompletionResultType]::ParameterValue, 'Convert span NDJSON into OTLP, pprof, flame graphs, Chrome traces, text, metrics, a summary or an HTML waterfall')
            [CompletionResult]::new('heap', 'heap', [CompletionResultType]::ParameterValue, 'A running Go program''s own heap profile, read from outside, as pprof or NDJSON')
            [CompletionResult]::new('goroutines', 'goroutines', [CompletionResultType]::ParameterValue, 'Every goroutine of a running Go program with its state and stack: NDJSON, pprof or Go''s dump text')
            [CompletionResult]::new('offsets-table', 'offsets-table', [CompletionResultType]::ParameterValue, 'Maintainer tool behind scripts/gen-offsets-table.sh')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'goprobe;inspect' {
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Inspect the executable of a running process (/proc/N/exe); the report carries the pid')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'With --functions: only names containing this substring')
            [CompletionResult]::new('--require', '--require', [CompletionResultType]::ParameterName, 'Exit 1 unless every listed probe (comma-separated, e.g. http.server,http.client; see the `probes` section of the report) is instrumentable in every input; why not is printed on stderr')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per binary (NDJSON); with --functions one object per function (name, address, offset, size; plus path when several binaries are given)')
            [CompletionResult]::new('--functions', '--functions', [CompletionResultType]::ParameterName, 'List functions from pclntab instead of the summary: address, file offset, size, name')
            [CompletionResult]::new('--strict-offsets', '--strict-offsets', [CompletionResultType]::ParameterName, 'With --require: count an offset that only the offsets table knows, for a Go patch release the table was not generated from (it uses the minor release''s layouts), as unknown')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;offsets' {
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Read the executable of a running process')
            [CompletionResult]::new('--field', '--field', [CompletionResultType]::ParameterName, 'A field to resolve, as PKG.Type.field (e.g. net/http.Request.Method, runtime.g.goid, net/http.Cookie.Expires.ext); repeatable. Any of these that is unknown makes the exit status 1')
            [CompletionResult]::new('--probe', '--probe', [CompletionResultType]::ParameterName, 'Resolve the fields this catalog probe needs for the binary''s Go version (e.g. db.sql), whether or not the binary contains the probe''s functions; repeatable, comma-separated. An unknown field the probe marks optional is reported but does not make the exit status 1')
            [CompletionResult]::new('--go-version', '--go-version', [CompletionResultType]::ParameterName, 'Look the offsets table up under this Go version instead of the one in the binary''s build info (e.g. 1.22.10)')
            [CompletionResult]::new('--table', '--table', [CompletionResultType]::ParameterName, 'Use this offsets table (as written by scripts/gen-offsets-table.sh) instead of the one built into goprobe')
            [CompletionResult]::new('--strict-offsets', '--strict-offsets', [CompletionResultType]::ParameterName, 'Refuse (as unknown) an offset that only the offsets table knows for a Go patch release the table was not generated from, instead of using its minor release''s layouts')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'NDJSON: one object per field: field, offset, size, type_size, source (dwarf, rtype = the binary''s type descriptors, table, unknown, conflict), checked (other sources that agree), table (slot, the releases it was verified on, whether this release is one), reason')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;attach' {
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Trace this process; repeat for several (e.g. a client and its server)')
            [CompletionResult]::new('--probes', '--probes', [CompletionResultType]::ParameterName, 'Comma-separated probes to attach, from the probe catalog: http.server, http.client, http.phases (connection phases of HTTP client calls), grpc.server, grpc.client, db.sql, go.panic, http.exchange (opt-in: request_sent and first_byte of a new connection''s first request, two traps on every HTTP/1 client request); `default` is every probe but the opt-in ones, `all` every probe (e.g. `default,http.exchange`). Probes the binary cannot support (e.g. db.sql without database/sql) are skipped with a note on stderr; `goprobe inspect` says why. Calls made on a goroutine a handler starts join its trace: on Go 1.21+ from the goroutine''s recorded parent, at no extra cost, one goroutine deep, for the probes that read it (http.client, http.phases, db.sql, go.panic); else through go.spawn (goroutine creation, two more uprobe hits per goroutine started), added automatically (for grpc.client, say). Name go.spawn to follow calls any number of goroutines deep')
            [CompletionResult]::new('--offsets', '--offsets', [CompletionResultType]::ParameterName, 'Field offsets as NDJSON from `goprobe offsets --json` (`-` for stdin); default: read them from the binary''s DWARF, else the offsets table')
            [CompletionResult]::new('--cpu', '--cpu', [CompletionResultType]::ParameterName, 'Sample the CPU HZ times per second of CPU time (default 99) on every CPU, with the cpu-clock perf event: each sample of a target thread carries its user stack and goroutine, and `record` labels it with the span it ran in (`cpu_sample` records). Same as adding `cpu.sample` to --probes')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Stop after this long (e.g. 500ms, 30s, 5m), counted from the moment the probes are attached; default: until Ctrl-C, SIGTERM, or the traced process exits')
            [CompletionResult]::new('--ring-buffer-size', '--ring-buffer-size', [CompletionResultType]::ParameterName, 'Ring buffer of every probe family, in bytes (a power of two, at least the page size; `K` and `M` suffixes), instead of the family''s default (1 to 8 MiB). Smaller buffers drop events sooner under bursts (each drop is counted as `ringbuf_full`)')
            [CompletionResult]::new('--strict-offsets', '--strict-offsets', [CompletionResultType]::ParameterName, 'Refuse a probe whose offsets only the offsets table knows for this binary''s Go patch release, which the table was not generated from (by default the minor release''s layouts are used, with a note)')
            [CompletionResult]::new('--baseline-empty', '--baseline-empty', [CompletionResultType]::ParameterName, 'Benchmark baseline: attach programs that do nothing at the same points (measures the cost of the uprobe traps alone; no events)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;record' {
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Trace this process; repeat for several (e.g. a client and its server)')
            [CompletionResult]::new('--probes', '--probes', [CompletionResultType]::ParameterName, 'Comma-separated probes to attach, from the probe catalog: http.server, http.client, http.phases (connection phases of HTTP client calls), grpc.server, grpc.client, db.sql, go.panic, http.exchange (opt-in: request_sent and first_byte of a new connection''s first request, two traps on every HTTP/1 client request); `default` is every probe but the opt-in ones, `all` every probe (e.g. `default,http.exchange`). Probes the binary cannot support (e.g. db.sql without database/sql) are skipped with a note on stderr; `goprobe inspect` says why. Calls made on a goroutine a handler starts join its trace: on Go 1.21+ from the goroutine''s recorded parent, at no extra cost, one goroutine deep, for the probes that read it (http.client, http.phases, db.sql, go.panic); else through go.spawn (goroutine creation, two more uprobe hits per goroutine started), added automatically (for grpc.client, say). Name go.spawn to follow calls any number of goroutines deep')
            [CompletionResult]::new('--offsets', '--offsets', [CompletionResultType]::ParameterName, 'Field offsets as NDJSON from `goprobe offsets --json` (`-` for stdin); default: read them from the binary''s DWARF, else the offsets table')
            [CompletionResult]::new('--cpu', '--cpu', [CompletionResultType]::ParameterName, 'Sample the CPU HZ times per second of CPU time (default 99) on every CPU, with the cpu-clock perf event: each sample of a target thread carries its user stack and goroutine, and `record` labels it with the span it ran in (`cpu_sample` records). Same as adding `cpu.sample` to --probes')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Stop after this long (e.g. 500ms, 30s, 5m), counted from the moment the probes are attached; default: until Ctrl-C, SIGTERM, or the traced process exits')
            [CompletionResult]::new('--ring-buffer-size', '--ring-buffer-size', [CompletionResultType]::ParameterName, 'Ring buffer of every probe family, in bytes (a power of two, at least the page size; `K` and `M` suffixes), instead of the family''s default (1 to 8 MiB). Smaller buffers drop events sooner under bursts (each drop is counted as `ringbuf_full`)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Stop after writing this many spans')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write spans here instead of stdout (`-` is stdout). An existing FILE is replaced only once the recording starts (a failure before leaves it as it was); lines are written whole, so a killed recording leaves no cut-off line')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write spans here instead of stdout (`-` is stdout). An existing FILE is replaced only once the recording starts (a failure before leaves it as it was); lines are written whole, so a killed recording leaves no cut-off line')
            [CompletionResult]::new('--strict-offsets', '--strict-offsets', [CompletionResultType]::ParameterName, 'Refuse a probe whose offsets only the offsets table knows for this binary''s Go patch release, which the table was not generated from (by default the minor release''s layouts are used, with a note)')
            [CompletionResult]::new('--append', '--append', [CompletionResultType]::ParameterName, 'Add to the end of the -o FILE instead of replacing it')
            [CompletionResult]::new('--raw-queries', '--raw-queries', [CompletionResultType]::ParameterName, 'Keep `db.query.text` as the program sent it. By default its string and number literals become `?` (credentials in `url.full` and sensitive query parameters are redacted either way)')
            [CompletionResult]::new('--summary', '--summary', [CompletionResultType]::ParameterName, 'At the end, print a table per service and route on stderr (as `convert --to summary`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;convert' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write; `-` or absent for stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write; `-` or absent for stdout')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'OTLP/HTTP collector base URL (spans go to URL/v1/traces, metrics to URL/v1/metrics); required with --to otlp')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'Spans per OTLP request / OTLP-JSON line')
            [CompletionResult]::new('--group-window', '--group-window', [CompletionResultType]::ParameterName, 'pprof/folded/flamegraph/html: a trace is complete once none of its spans was seen in this many spans (bounds memory; later stragglers become roots)')
            [CompletionResult]::new('--max-tries', '--max-tries', [CompletionResultType]::ParameterName, 'otlp: attempts per batch, including the first')
            [CompletionResult]::new('--span-name', '--span-name', [CompletionResultType]::ParameterName, 'pprof/folded/flamegraph: only the CPU samples taken in a span of this name (the request''s, e.g. ''GET /report'', or the innermost span''s); without samples, the traces with a span of this name')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'metrics: the exposition format')
            [CompletionResult]::new('--signal', '--signal', [CompletionResultType]::ParameterName, 'otlp: push the spans (traces) or metrics computed from them')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'metrics (and otlp --signal metrics): write the cumulative values every DURATION while the input is open (for `record | convert`), and once more at its end; with -o FILE and Prometheus the file is replaced each time')
            [CompletionResult]::new('--trace-id', '--trace-id', [CompletionResultType]::ParameterName, 'html: draw this trace (32 hex digits); pprof/folded/flamegraph: only this trace''s CPU samples (or spans)')
            [CompletionResult]::new('--slowest', '--slowest', [CompletionResultType]::ParameterName, 'html: draw the N slowest traces (default 1), slowest first')
            [CompletionResult]::new('--skip-invalid', '--skip-invalid', [CompletionResultType]::ParameterName, 'Skip malformed lines (counted on stderr) instead of stopping at the first')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'summary: JSON instead of the table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;heap' {
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'The process to read')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write (`-`: stdout)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write (`-`: stdout)')
            [CompletionResult]::new('--freeze-hold', '--freeze-hold', [CompletionResultType]::ParameterName, 'Keep a frozen process stopped this much longer (tests, demos)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'NDJSON instead of pprof: a `snapshot` line, then one `heap_sample` per allocation site (sampled and scaled counts, stack)')
            [CompletionResult]::new('--freeze', '--freeze', [CompletionResultType]::ParameterName, 'Stop the process (every thread, with ptrace) for the length of the read, for an exact picture; how long it was stopped goes to stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;goroutines' {
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'The process to read')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write (`-`: stdout)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write (`-`: stdout)')
            [CompletionResult]::new('--freeze-hold', '--freeze-hold', [CompletionResultType]::ParameterName, 'Keep a frozen process stopped this much longer (tests, demos)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Keep runtime-internal goroutines and frames in text and pprof (like GOTRACEBACK=system)')
            [CompletionResult]::new('--freeze', '--freeze', [CompletionResultType]::ParameterName, 'Stop the process (every thread, with ptrace) for the length of the read, for an exact picture; how long it was stopped goes to stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'goprobe;offsets-table' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('entry', 'entry', [CompletionResultType]::ParameterValue, 'Print one table entry (JSON) read from a binary''s DWARF: every catalog field it has')
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Write TABLE''s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Exit 1 unless TABLE holds exactly these ENTRY files'' layouts')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'goprobe;offsets-table;entry' {
            [CompletionResult]::new('--go', '--go', [CompletionResultType]::ParameterName, 'The exact Go version that built BIN (`go env GOVERSION`)')
            [CompletionResult]::new('--goarch', '--goarch', [CompletionResultType]::ParameterName, 'GOARCH of BIN')
            [CompletionResult]::new('--field', '--field', [CompletionResultType]::ParameterName, 'Extra fields to include besides the catalog''s')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'goprobe;offsets-table;build' {
            [CompletionResult]::new('--table', '--table', [CompletionResultType]::ParameterName, 'table')
            [CompletionResult]::new('--split', '--split', [CompletionResultType]::ParameterName, 'Record patch releases whose layouts differ from their minor''s as layout groups of their own instead of failing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'goprobe;offsets-table;merge' {
            [CompletionResult]::new('--table', '--table', [CompletionResultType]::ParameterName, 'table')
            [CompletionResult]::new('--split', '--split', [CompletionResultType]::ParameterName, 'As for `build`')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'goprobe;offsets-table;check' {
            [CompletionResult]::new('--table', '--table', [CompletionResultType]::ParameterName, 'table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'goprobe;offsets-table;help' {
            [CompletionResult]::new('entry', 'entry', [CompletionResultType]::ParameterValue, 'Print one table entry (JSON) read from a binary''s DWARF: every catalog field it has')
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Write TABLE''s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Exit 1 unless TABLE holds exactly these ENTRY files'' layouts')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'goprobe;offsets-table;help;entry' {
            break
        }
        'goprobe;offsets-table;help;build' {
            break
        }
        'goprobe;offsets-table;help;merge' {
            break
        }
        'goprobe;offsets-table;help;check' {
            break
        }
        'goprobe;offsets-table;help;help' {
            break
        }
        'goprobe;help' {
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a Go binary''s build info, ELF facts and function table')
            [CompletionResult]::new('offsets', 'offsets', [CompletionResultType]::ParameterValue, 'Struct-field offsets a probe needs (from DWARF, else the offsets table), or any field given')
            [CompletionResult]::new('attach', 'attach', [CompletionResultType]::ParameterValue, 'Attach eBPF probes to a Go binary or process and stream completed calls as NDJSON')
            [CompletionResult]::new('record', 'record', [CompletionResultType]::ParameterValue, 'Record spans (NDJSON, goprobe''s span schema) from a Go binary, a process, or attach''s output on stdin')
            [CompletionResult]::new('convert', 'convert', [CompletionResultType]::ParameterValue, 'Convert span NDJSON into OTLP, pprof, flame graphs, Chrome traces, text, metrics, a summary or an HTML waterfall')
            [CompletionResult]::new('heap', 'heap', [CompletionResultType]::ParameterValue, 'A running Go program''s own heap profile, read from outside, as pprof or NDJSON')
            [CompletionResult]::new('goroutines', 'goroutines', [CompletionResultType]::ParameterValue, 'Every goroutine of a running Go program with its state and stack: NDJSON, pprof or Go''s dump text')
            [CompletionResult]::new('offsets-table', 'offsets-table', [CompletionResultType]::ParameterValue, 'Maintainer tool behind scripts/gen-offsets-table.sh')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'goprobe;help;inspect' {
            break
        }
        'goprobe;help;offsets' {
            break
        }
        'goprobe;help;attach' {
            break
        }
        'goprobe;help;record' {
            break
        }
        'goprobe;help;convert' {
            break
        }
        'goprobe;help;heap' {
            break
        }
        'goprobe;help;goroutines' {
            break
        }
        'goprobe;help;offsets-table' {
            [CompletionResult]::new('entry', 'entry', [CompletionResultType]::ParameterValue, 'Print one table entry (JSON) read from a binary''s DWARF: every catalog field it has')
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Write TABLE''s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Exit 1 unless TABLE holds exactly these ENTRY files'' layouts')
            break
        }
        'goprobe;help;offsets-table;entry' {
            break
        }
        'goprobe;help;offsets-table;build' {
            break
        }
        'goprobe;help;offsets-table;merge' {
            break
        }
        'goprobe;help;offsets-table;check' {
            break
        }
        'goprobe;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
