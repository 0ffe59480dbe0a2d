# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_goprobe_global_optspecs
    string join \n h/help V/version
end

function __fish_goprobe_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_goprobe_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_goprobe_using_subcommand
    set -l cmd (__fish_goprobe_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c goprobe -n "__fish_goprobe_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_needs_command" -s V -l version -d 'Print version'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "inspect" -d 'Show a Go binary\'s build info, ELF facts and function table'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "offsets" -d 'Struct-field offsets a probe needs (from DWARF, else the offsets table), or any field given'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "attach" -d 'Attach eBPF probes to a Go binary or process and stream completed calls as NDJSON'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "record" -d 'Record spans (NDJSON, goprobe\'s span schema) from a Go binary, a process, or attach\'s output on stdin'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "convert" -d 'Convert span NDJSON into OTLP, pprof, flame graphs, Chrome traces, text, metrics, a summary or an HTML waterfall'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "heap" -d 'A running Go program\'s own heap profile, read from outside, as pprof or NDJSON'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "goroutines" -d 'Every goroutine of a running Go program with its state and stack: NDJSON, pprof or Go\'s dump text'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "offsets-table" -d 'Maintainer tool behind scripts/gen-offsets-table.sh'
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l pid -d 'Inspect the executable of a running process (/proc/N/exe); the report carries the pid' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l match -d 'With --functions: only names containing this substring' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l require -d 'Exit 1 unless every listed probe (comma-separated, e.g. http.server,http.client; see the `probes` section of the report) is instrumentable in every input; why not is printed on stderr' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l json -d 'One JSON object per binary (NDJSON); with --functions one object per function (name, address, offset, size; plus path when several binaries are given)'
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l functions -d 'List functions from pclntab instead of the summary: address, file offset, size, name'
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l strict-offsets -d 'With --require: count an offset that only the offsets table knows, for a Go patch release the table was not generated from (it uses the minor release\'s layouts), as unknown'
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets" -l pid -d 'Read the executable of a running process' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets" -l field -d 'A field to resolve, as PKG.Type.field (e.g. net/http.Request.Method, runtime.g.goid, net/http.Cookie.Expires.ext); repeatable. Any of these that is unknown makes the exit status 1' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets" -l probe -d 'Resolve the fields this catalog probe needs for the binary\'s Go version (e.g. db.sql), whether or not the binary contains the probe\'s functions; repeatable, comma-separated. An unknown field the probe marks optional is reported but does not make the exit status 1' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets" -l go-version -d 'Look the offsets table up under this Go version instead of the one in the binary\'s build info (e.g. 1.22.10)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets" -l table -d 'Use this offsets table (as written by scripts/gen-offsets-table.sh) instead of the one built into goprobe' -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets" -l strict-offsets -d 'Refuse (as unknown) an offset that only the offsets table knows for a Go patch release the table was not generated from, instead of using its minor release\'s layouts'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets" -l json -d 'NDJSON: one object per field: field, offset, size, type_size, source (dwarf, rtype = the binary\'s type descriptors, table, unknown, conflict), checked (other sources that agree), table (slot, the releases it was verified on, whether this release is one), reason'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -l pid -d 'Trace this process; repeat for several (e.g. a client and its server)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -l probes -d 'Comma-separated probes to attach, from the probe catalog: http.server, http.client, http.phases (connection phases of HTTP client calls), grpc.server, grpc.client, db.sql, go.panic, http.exchange (opt-in: request_sent and first_byte of a new connection\'s first request, two traps on every HTTP/1 client request); `default` is every probe but the opt-in ones, `all` every probe (e.g. `default,http.exchange`). Probes the binary cannot support (e.g. db.sql without database/sql) are skipped with a note on stderr; `goprobe inspect` says why. Calls made on a goroutine a handler starts join its trace: on Go 1.21+ from the goroutine\'s recorded parent, at no extra cost, one goroutine deep, for the probes that read it (http.client, http.phases, db.sql, go.panic); else through go.spawn (goroutine creation, two more uprobe hits per goroutine started), added automatically (for grpc.client, say). Name go.spawn to follow calls any number of goroutines deep' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -l offsets -d 'Field offsets as NDJSON from `goprobe offsets --json` (`-` for stdin); default: read them from the binary\'s DWARF, else the offsets table' -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -l cpu -d 'Sample the CPU HZ times per second of CPU time (default 99) on every CPU, with the cpu-clock perf event: each sample of a target thread carries its user stack and goroutine, and `record` labels it with the span it ran in (`cpu_sample` records). Same as adding `cpu.sample` to --probes' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -l duration -d 'Stop after this long (e.g. 500ms, 30s, 5m), counted from the moment the probes are attached; default: until Ctrl-C, SIGTERM, or the traced process exits' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -l ring-buffer-size -d 'Ring buffer of every probe family, in bytes (a power of two, at least the page size; `K` and `M` suffixes), instead of the family\'s default (1 to 8 MiB). Smaller buffers drop events sooner under bursts (each drop is counted as `ringbuf_full`)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -l strict-offsets -d 'Refuse a probe whose offsets only the offsets table knows for this binary\'s Go patch release, which the table was not generated from (by default the minor release\'s layouts are used, with a note)'
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -l baseline-empty -d 'Benchmark baseline: attach programs that do nothing at the same points (measures the cost of the uprobe traps alone; no events)'
complete -c goprobe -n "__fish_goprobe_using_subcommand attach" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l pid -d 'Trace this process; repeat for several (e.g. a client and its server)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l probes -d 'Comma-separated probes to attach, from the probe catalog: http.server, http.client, http.phases (connection phases of HTTP client calls), grpc.server, grpc.client, db.sql, go.panic, http.exchange (opt-in: request_sent and first_byte of a new connection\'s first request, two traps on every HTTP/1 client request); `default` is every probe but the opt-in ones, `all` every probe (e.g. `default,http.exchange`). Probes the binary cannot support (e.g. db.sql without database/sql) are skipped with a note on stderr; `goprobe inspect` says why. Calls made on a goroutine a handler starts join its trace: on Go 1.21+ from the goroutine\'s recorded parent, at no extra cost, one goroutine deep, for the probes that read it (http.client, http.phases, db.sql, go.panic); else through go.spawn (goroutine creation, two more uprobe hits per goroutine started), added automatically (for grpc.client, say). Name go.spawn to follow calls any number of goroutines deep' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l offsets -d 'Field offsets as NDJSON from `goprobe offsets --json` (`-` for stdin); default: read them from the binary\'s DWARF, else the offsets table' -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l cpu -d 'Sample the CPU HZ times per second of CPU time (default 99) on every CPU, with the cpu-clock perf event: each sample of a target thread carries its user stack and goroutine, and `record` labels it with the span it ran in (`cpu_sample` records). Same as adding `cpu.sample` to --probes' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l duration -d 'Stop after this long (e.g. 500ms, 30s, 5m), counted from the moment the probes are attached; default: until Ctrl-C, SIGTERM, or the traced process exits' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l ring-buffer-size -d 'Ring buffer of every probe family, in bytes (a power of two, at least the page size; `K` and `M` suffixes), instead of the family\'s default (1 to 8 MiB). Smaller buffers drop events sooner under bursts (each drop is counted as `ringbuf_full`)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l limit -d 'Stop after writing this many spans' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -s o -l output -d 'Write spans here instead of stdout (`-` is stdout). An existing FILE is replaced only once the recording starts (a failure before leaves it as it was); lines are written whole, so a killed recording leaves no cut-off line' -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l strict-offsets -d 'Refuse a probe whose offsets only the offsets table knows for this binary\'s Go patch release, which the table was not generated from (by default the minor release\'s layouts are used, with a note)'
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l append -d 'Add to the end of the -o FILE instead of replacing it'
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l raw-queries -d 'Keep `db.query.text` as the program sent it. By default its string and number literals become `?` (credentials in `url.full` and sensitive query parameters are redacted either way)'
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -l summary -d 'At the end, print a table per service and route on stderr (as `convert --to summary`)'
complete -c goprobe -n "__fish_goprobe_using_subcommand record" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l to -d 'Output format' -r -f -a "otlp-json\t'OTLP/JSON, one ExportTraceServiceRequest per line (Collector file exporter format)'
otlp\t'OTLP/HTTP protobuf pushed to --endpoint'
pprof\t'Gzipped pprof profile.proto for `go tool pprof`: a CPU profile when the recording has CPU samples (`record --cpu`), else span times'
folded\t'Folded stacks: CPU nanoseconds per Go stack under its span\'s name when there are CPU samples, else span self time (`service;root;child;span NANOS`)'
flamegraph\t'Flame graph SVG of the folded stacks'
chrome\t'Trace Event Format JSON for Perfetto and chrome://tracing (CPU samples as instant events on their trace\'s track)'
text\t'Human-readable listing'
metrics\t'RED metrics and a panic counter (--format prometheus or otlp-json)'
summary\t'A table per service and route: count, errors, p50/p90/p99/max, panics'
html\t'A self-contained HTML page with a waterfall of one trace or the slowest'"
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -s o -l output -d 'Where to write; `-` or absent for stdout' -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l endpoint -d 'OTLP/HTTP collector base URL (spans go to URL/v1/traces, metrics to URL/v1/metrics); required with --to otlp' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l batch-size -d 'Spans per OTLP request / OTLP-JSON line' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l group-window -d 'pprof/folded/flamegraph/html: a trace is complete once none of its spans was seen in this many spans (bounds memory; later stragglers become roots)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l max-tries -d 'otlp: attempts per batch, including the first' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l span-name -d 'pprof/folded/flamegraph: only the CPU samples taken in a span of this name (the request\'s, e.g. \'GET /report\', or the innermost span\'s); without samples, the traces with a span of this name' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l format -d 'metrics: the exposition format' -r -f -a "prometheus\t'Prometheus text exposition format 0.0.4'
otlp-json\t'OTLP/JSON, one ExportMetricsServiceRequest per line'"
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l signal -d 'otlp: push the spans (traces) or metrics computed from them' -r -f -a "traces\t'The spans themselves, to URL/v1/traces'
metrics\t'Metrics computed from the spans (as --to metrics), to URL/v1/metrics'"
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l interval -d 'metrics (and otlp --signal metrics): write the cumulative values every DURATION while the input is open (for `record | convert`), and once more at its end; with -o FILE and Prometheus the file is replaced each time' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l trace-id -d 'html: draw this trace (32 hex digits); pprof/folded/flamegraph: only this trace\'s CPU samples (or spans)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l slowest -d 'html: draw the N slowest traces (default 1), slowest first' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l skip-invalid -d 'Skip malformed lines (counted on stderr) instead of stopping at the first'
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -l json -d 'summary: JSON instead of the table'
complete -c goprobe -n "__fish_goprobe_using_subcommand convert" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_using_subcommand heap" -l pid -d 'The process to read' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand heap" -s o -l output -d 'Where to write (`-`: stdout)' -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand heap" -l freeze-hold -d 'Keep a frozen process stopped this much longer (tests, demos)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand heap" -l json -d 'NDJSON instead of pprof: a `snapshot` line, then one `heap_sample` per allocation site (sampled and scaled counts, stack)'
complete -c goprobe -n "__fish_goprobe_using_subcommand heap" -l freeze -d 'Stop the process (every thread, with ptrace) for the length of the read, for an exact picture; how long it was stopped goes to stderr'
complete -c goprobe -n "__fish_goprobe_using_subcommand heap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_using_subcommand goroutines" -l pid -d 'The process to read' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand goroutines" -l to -d 'Output format' -r -f -a "ndjson\t'A `snapshot` line, then one `goroutine` object per line'
pprof\t'A gzipped pprof goroutine profile (counts by stack, like /debug/pprof/goroutine)'
text\t'Go\'s own dump format (/debug/pprof/goroutine?debug=2)'"
complete -c goprobe -n "__fish_goprobe_using_subcommand goroutines" -s o -l output -d 'Where to write (`-`: stdout)' -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand goroutines" -l freeze-hold -d 'Keep a frozen process stopped this much longer (tests, demos)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand goroutines" -l all -d 'Keep runtime-internal goroutines and frames in text and pprof (like GOTRACEBACK=system)'
complete -c goprobe -n "__fish_goprobe_using_subcommand goroutines" -l freeze -d 'Stop the process (every thread, with ptrace) for the length of the read, for an exact picture; how long it was stopped goes to stderr'
complete -c goprobe -n "__fish_goprobe_using_subcommand goroutines" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and not __fish_seen_subcommand_from entry build merge check help" -s h -l help -d 'Print help'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and not __fish_seen_subcommand_from entry build merge check help" -f -a "entry" -d 'Print one table entry (JSON) read from a binary\'s DWARF: every catalog field it has'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and not __fish_seen_subcommand_from entry build merge check help" -f -a "build" -d 'Write TABLE\'s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and not __fish_seen_subcommand_from entry build merge check help" -f -a "merge" -d 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and not __fish_seen_subcommand_from entry build merge check help" -f -a "check" -d 'Exit 1 unless TABLE holds exactly these ENTRY files\' layouts'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and not __fish_seen_subcommand_from entry build merge check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from entry" -l go -d 'The exact Go version that built BIN (`go env GOVERSION`)' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from entry" -l goarch -d 'GOARCH of BIN' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from entry" -l field -d 'Extra fields to include besides the catalog\'s' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from entry" -s h -l help -d 'Print help'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from build" -l table -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from build" -l split -d 'Record patch releases whose layouts differ from their minor\'s as layout groups of their own instead of failing'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from build" -s h -l help -d 'Print help'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from merge" -l table -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from merge" -l split -d 'As for `build`'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from merge" -s h -l help -d 'Print help'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from check" -l table -r -F
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from help" -f -a "entry" -d 'Print one table entry (JSON) read from a binary\'s DWARF: every catalog field it has'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from help" -f -a "build" -d 'Write TABLE\'s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from help" -f -a "merge" -d 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from help" -f -a "check" -d 'Exit 1 unless TABLE holds exactly these ENTRY files\' layouts'
complete -c goprobe -n "__fish_goprobe_using_subcommand offsets-table; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "inspect" -d 'Show a Go binary\'s build info, ELF facts and function table'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "offsets" -d 'Struct-field offsets a probe needs (from DWARF, else the offsets table), or any field given'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "attach" -d 'Attach eBPF probes to a Go binary or process and stream completed calls as NDJSON'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "record" -d 'Record spans (NDJSON, goprobe\'s span schema) from a Go binary, a process, or attach\'s output on stdin'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "convert" -d 'Convert span NDJSON into OTLP, pprof, flame graphs, Chrome traces, text, metrics, a summary or an HTML waterfall'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "heap" -d 'A running Go program\'s own heap profile, read from outside, as pprof or NDJSON'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "goroutines" -d 'Every goroutine of a running Go program with its state and stack: NDJSON, pprof or Go\'s dump text'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "offsets-table" -d 'Maintainer tool behind scripts/gen-offsets-table.sh'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect offsets attach record convert heap goroutines offsets-table help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and __fish_seen_subcommand_from offsets-table" -f -a "entry" -d 'Print one table entry (JSON) read from a binary\'s DWARF: every catalog field it has'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and __fish_seen_subcommand_from offsets-table" -f -a "build" -d 'Write TABLE\'s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and __fish_seen_subcommand_from offsets-table" -f -a "merge" -d 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and __fish_seen_subcommand_from offsets-table" -f -a "check" -d 'Exit 1 unless TABLE holds exactly these ENTRY files\' layouts'
