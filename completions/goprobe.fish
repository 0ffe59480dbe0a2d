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
complete -c goprobe -n "__fish_goprobe_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l pid -d 'Inspect the executable of a running process (/proc/N/exe); the report carries the pid' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l match -d 'With --functions: only names containing this substring' -r
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l json -d 'One JSON object per binary (NDJSON); with --functions one object per function (name, address, offset, size; plus path when several binaries are given)'
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -l functions -d 'List functions from pclntab instead of the summary: address, file offset, size, name'
complete -c goprobe -n "__fish_goprobe_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect help" -f -a "inspect" -d 'Show a Go binary\'s build info, ELF facts and function table'
complete -c goprobe -n "__fish_goprobe_using_subcommand help; and not __fish_seen_subcommand_from inspect help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
