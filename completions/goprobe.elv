
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
            cand offsets 'Struct-field offsets a probe needs (from DWARF, else the offsets table), or any field given'
            cand attach 'Attach eBPF probes to a Go binary or process and stream completed calls as NDJSON'
            cand record 'Record spans (NDJSON, goprobe''s span schema) from a Go binary, a process, or attach''s output on stdin'
            cand convert 'Convert span NDJSON into OTLP, pprof, flame graphs, Chrome traces, text, metrics, a summary or an HTML waterfall'
            cand heap 'A running Go program''s own heap profile, read from outside, as pprof or NDJSON'
            cand goroutines 'Every goroutine of a running Go program with its state and stack: NDJSON, pprof or Go''s dump text'
            cand offsets-table 'Maintainer tool behind scripts/gen-offsets-table.sh'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'goprobe;inspect'= {
            cand --pid 'Inspect the executable of a running process (/proc/N/exe); the report carries the pid'
            cand --match 'With --functions: only names containing this substring'
            cand --require 'Exit 1 unless every listed probe (comma-separated, e.g. http.server,http.client; see the `probes` section of the report) is instrumentable in every input; why not is printed on stderr'
            cand --json 'One JSON object per binary (NDJSON); with --functions one object per function (name, address, offset, size; plus path when several binaries are given)'
            cand --functions 'List functions from pclntab instead of the summary: address, file offset, size, name'
            cand --strict-offsets 'With --require: count an offset that only the offsets table knows, for a Go patch release the table was not generated from (it uses the minor release''s layouts), as unknown'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;offsets'= {
            cand --pid 'Read the executable of a running process'
            cand --field 'A field to resolve, as PKG.Type.field (e.g. net/http.Request.Method, runtime.g.goid, net/http.Cookie.Expires.ext); repeatable. Any of these that is unknown makes the exit status 1'
            cand --probe 'Resolve the fields this catalog probe needs for the binary''s Go version (e.g. db.sql), whether or not the binary contains the probe''s functions; repeatable, comma-separated. An unknown field the probe marks optional is reported but does not make the exit status 1'
            cand --go-version 'Look the offsets table up under this Go version instead of the one in the binary''s build info (e.g. 1.22.10)'
            cand --table 'Use this offsets table (as written by scripts/gen-offsets-table.sh) instead of the one built into goprobe'
            cand --strict-offsets 'Refuse (as unknown) an offset that only the offsets table knows for a Go patch release the table was not generated from, instead of using its minor release''s layouts'
            cand --json 'NDJSON: one object per field: field, offset, size, type_size, source (dwarf, rtype = the binary''s type descriptors, table, unknown, conflict), checked (other sources that agree), table (slot, the releases it was verified on, whether this release is one), reason'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;attach'= {
            cand --pid 'Trace this process; repeat for several (e.g. a client and its server)'
            cand --probes 'Comma-separated probes to attach, from the probe catalog: http.server, http.client, http.phases (connection phases of HTTP client calls), grpc.server, grpc.client, db.sql, go.panic, http.exchange (opt-in: request_sent and first_byte of a new connection''s first request, two traps on every HTTP/1 client request); `default` is every probe but the opt-in ones, `all` every probe (e.g. `default,http.exchange`). Probes the binary cannot support (e.g. db.sql without database/sql) are skipped with a note on stderr; `goprobe inspect` says why. Calls made on a goroutine a handler starts join its trace: on Go 1.21+ from the goroutine''s recorded parent, at no extra cost, one goroutine deep, for the probes that read it (http.client, http.phases, db.sql, go.panic); else through go.spawn (goroutine creation, two more uprobe hits per goroutine started), added automatically (for grpc.client, say). Name go.spawn to follow calls any number of goroutines deep'
            cand --offsets 'Field offsets as NDJSON from `goprobe offsets --json` (`-` for stdin); default: read them from the binary''s DWARF, else the offsets table'
            cand --cpu 'Sample the CPU HZ times per second of CPU time (default 99) on every CPU, with the cpu-clock perf event: each sample of a target thread carries its user stack and goroutine, and `record` labels it with the span it ran in (`cpu_sample` records). Same as adding `cpu.sample` to --probes'
            cand --duration 'Stop after this long (e.g. 500ms, 30s, 5m), counted from the moment the probes are attached; default: until Ctrl-C, SIGTERM, or the traced process exits'
            cand --ring-buffer-size 'Ring buffer of every probe family, in bytes (a power of two, at least the page size; `K` and `M` suffixes), instead of the family''s default (1 to 8 MiB). Smaller buffers drop events sooner under bursts (each drop is counted as `ringbuf_full`)'
            cand --strict-offsets 'Refuse a probe whose offsets only the offsets table knows for this binary''s Go patch release, which the table was not generated from (by default the minor release''s layouts are used, with a note)'
            cand --baseline-empty 'Benchmark baseline: attach programs that do nothing at the same points (measures the cost of the uprobe traps alone; no events)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;record'= {
            cand --pid 'Trace this process; repeat for several (e.g. a client and its server)'
            cand --probes 'Comma-separated probes to attach, from the probe catalog: http.server, http.client, http.phases (connection phases of HTTP client calls), grpc.server, grpc.client, db.sql, go.panic, http.exchange (opt-in: request_sent and first_byte of a new connection''s first request, two traps on every HTTP/1 client request); `default` is every probe but the opt-in ones, `all` every probe (e.g. `default,http.exchange`). Probes the binary cannot support (e.g. db.sql without database/sql) are skipped with a note on stderr; `goprobe inspect` says why. Calls made on a goroutine a handler starts join its trace: on Go 1.21+ from the goroutine''s recorded parent, at no extra cost, one goroutine deep, for the probes that read it (http.client, http.phases, db.sql, go.panic); else through go.spawn (goroutine creation, two more uprobe hits per goroutine started), added automatically (for grpc.client, say). Name go.spawn to follow calls any number of goroutines deep'
            cand --offsets 'Field offsets as NDJSON from `goprobe offsets --json` (`-` for stdin); default: read them from the binary''s DWARF, else the offsets table'
            cand --cpu 'Sample the CPU HZ times per second of CPU time (default 99) on every CPU, with the cpu-clock perf event: each sample of a target thread carries its user stack and goroutine, and `record` labels it with the span it ran in (`cpu_sample` records). Same as adding `cpu.sample` to --probes'
            cand --duration 'Stop after this long (e.g. 500ms, 30s, 5m), counted from the moment the probes are attached; default: until Ctrl-C, SIGTERM, or the traced process exits'
            cand --ring-buffer-size 'Ring buffer of every probe family, in bytes (a power of two, at least the page size; `K` and `M` suffixes), instead of the family''s default (1 to 8 MiB). Smaller buffers drop events sooner under bursts (each drop is counted as `ringbuf_full`)'
            cand --limit 'Stop after writing this many spans'
            cand -o 'Write spans here instead of stdout (`-` is stdout). An existing FILE is replaced only once the recording starts (a failure before leaves it as it was); lines are written whole, so a killed recording leaves no cut-off line'
            cand --output 'Write spans here instead of stdout (`-` is stdout). An existing FILE is replaced only once the recording starts (a failure before leaves it as it was); lines are written whole, so a killed recording leaves no cut-off line'
            cand --strict-offsets 'Refuse a probe whose offsets only the offsets table knows for this binary''s Go patch release, which the table was not generated from (by default the minor release''s layouts are used, with a note)'
            cand --append 'Add to the end of the -o FILE instead of replacing it'
            cand --raw-queries 'Keep `db.query.text` as the program sent it. By default its string and number literals become `?` (credentials in `url.full` and sensitive query parameters are redacted either way)'
            cand --summary 'At the end, print a table per service and route on stderr (as `convert --to summary`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;convert'= {
            cand --to 'Output format'
            cand -o 'Where to write; `-` or absent for stdout'
            cand --output 'Where to write; `-` or absent for stdout'
            cand --endpoint 'OTLP/HTTP collector base URL (spans go to URL/v1/traces, metrics to URL/v1/metrics); required with --to otlp'
            cand --batch-size 'Spans per OTLP request / OTLP-JSON line'
            cand --group-window 'pprof/folded/flamegraph/html: a trace is complete once none of its spans was seen in this many spans (bounds memory; later stragglers become roots)'
            cand --max-tries 'otlp: attempts per batch, including the first'
            cand --span-name 'pprof/folded/flamegraph: only the CPU samples taken in a span of this name (the request''s, e.g. ''GET /report'', or the innermost span''s); without samples, the traces with a span of this name'
            cand --format 'metrics: the exposition format'
            cand --signal 'otlp: push the spans (traces) or metrics computed from them'
            cand --interval 'metrics (and otlp --signal metrics): write the cumulative values every DURATION while the input is open (for `record | convert`), and once more at its end; with -o FILE and Prometheus the file is replaced each time'
            cand --trace-id 'html: draw this trace (32 hex digits); pprof/folded/flamegraph: only this trace''s CPU samples (or spans)'
            cand --slowest 'html: draw the N slowest traces (default 1), slowest first'
            cand --skip-invalid 'Skip malformed lines (counted on stderr) instead of stopping at the first'
            cand --json 'summary: JSON instead of the table'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;heap'= {
            cand --pid 'The process to read'
            cand -o 'Where to write (`-`: stdout)'
            cand --output 'Where to write (`-`: stdout)'
            cand --freeze-hold 'Keep a frozen process stopped this much longer (tests, demos)'
            cand --json 'NDJSON instead of pprof: a `snapshot` line, then one `heap_sample` per allocation site (sampled and scaled counts, stack)'
            cand --freeze 'Stop the process (every thread, with ptrace) for the length of the read, for an exact picture; how long it was stopped goes to stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;goroutines'= {
            cand --pid 'The process to read'
            cand --to 'Output format'
            cand -o 'Where to write (`-`: stdout)'
            cand --output 'Where to write (`-`: stdout)'
            cand --freeze-hold 'Keep a frozen process stopped this much longer (tests, demos)'
            cand --all 'Keep runtime-internal goroutines and frames in text and pprof (like GOTRACEBACK=system)'
            cand --freeze 'Stop the process (every thread, with ptrace) for the length of the read, for an exact picture; how long it was stopped goes to stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'goprobe;offsets-table'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand entry 'Print one table entry (JSON) read from a binary''s DWARF: every catalog field it has'
            cand build 'Write TABLE''s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree'
            cand merge 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor'
            cand check 'Exit 1 unless TABLE holds exactly these ENTRY files'' layouts'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'goprobe;offsets-table;entry'= {
            cand --go 'The exact Go version that built BIN (`go env GOVERSION`)'
            cand --goarch 'GOARCH of BIN'
            cand --field 'Extra fields to include besides the catalog''s'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'goprobe;offsets-table;build'= {
            cand --table 'table'
            cand --split 'Record patch releases whose layouts differ from their minor''s as layout groups of their own instead of failing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'goprobe;offsets-table;merge'= {
            cand --table 'table'
            cand --split 'As for `build`'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'goprobe;offsets-table;check'= {
            cand --table 'table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'goprobe;offsets-table;help'= {
            cand entry 'Print one table entry (JSON) read from a binary''s DWARF: every catalog field it has'
            cand build 'Write TABLE''s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree'
            cand merge 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor'
            cand check 'Exit 1 unless TABLE holds exactly these ENTRY files'' layouts'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'goprobe;offsets-table;help;entry'= {
        }
        &'goprobe;offsets-table;help;build'= {
        }
        &'goprobe;offsets-table;help;merge'= {
        }
        &'goprobe;offsets-table;help;check'= {
        }
        &'goprobe;offsets-table;help;help'= {
        }
        &'goprobe;help'= {
            cand inspect 'Show a Go binary''s build info, ELF facts and function table'
            cand offsets 'Struct-field offsets a probe needs (from DWARF, else the offsets table), or any field given'
            cand attach 'Attach eBPF probes to a Go binary or process and stream completed calls as NDJSON'
            cand record 'Record spans (NDJSON, goprobe''s span schema) from a Go binary, a process, or attach''s output on stdin'
            cand convert 'Convert span NDJSON into OTLP, pprof, flame graphs, Chrome traces, text, metrics, a summary or an HTML waterfall'
            cand heap 'A running Go program''s own heap profile, read from outside, as pprof or NDJSON'
            cand goroutines 'Every goroutine of a running Go program with its state and stack: NDJSON, pprof or Go''s dump text'
            cand offsets-table 'Maintainer tool behind scripts/gen-offsets-table.sh'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'goprobe;help;inspect'= {
        }
        &'goprobe;help;offsets'= {
        }
        &'goprobe;help;attach'= {
        }
        &'goprobe;help;record'= {
        }
        &'goprobe;help;convert'= {
        }
        &'goprobe;help;heap'= {
        }
        &'goprobe;help;goroutines'= {
        }
        &'goprobe;help;offsets-table'= {
            cand entry 'Print one table entry (JSON) read from a binary''s DWARF: every catalog field it has'
            cand build 'Write TABLE''s standard-library layouts afresh from ENTRY files (its module layouts are kept); exit 1 if patch releases of a minor disagree'
            cand merge 'Add ENTRY files to TABLE; exit 1 if one disagrees with its minor'
            cand check 'Exit 1 unless TABLE holds exactly these ENTRY files'' layouts'
        }
        &'goprobe;help;offsets-table;entry'= {
        }
        &'goprobe;help;offsets-table;build'= {
        }
        &'goprobe;help;offsets-table;merge'= {
        }
        &'goprobe;help;offsets-table;check'= {
        }
        &'goprobe;help;help'= {
        }
    ]
    $completions[$command]
}
