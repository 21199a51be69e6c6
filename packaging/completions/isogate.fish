# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_isogate_global_optspecs
    string join \n log-format= h/help V/version
end

function __fish_isogate_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_isogate_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_isogate_using_subcommand
    set -l cmd (__fish_isogate_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c isogate -n "__fish_isogate_needs_command" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_needs_command" -s V -l version -d 'Print version'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "init" -d 'Write a ready two-node lab (court <-> internet) into DIR'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "run" -d 'Run a node until SIGTERM or SIGINT'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "bench" -d 'Measure this machine\'s limits and the gateway\'s figures, as ratios'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "demo" -d 'Make a lab, run both nodes here, drop sample files, and show what crosses'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "check" -d 'Validate a configuration and the policies it names; list every problem'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "audit" -d 'Verify, query, prove from, reconcile, export and report on audit logs'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "keygen" -d 'Make a node\'s signing key pair and TLS certificate and key'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "resend" -d 'Ask the running diode sender to send held objects again (after a `lost` report)'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "quarantine" -d 'The security officer\'s work on a node\'s quarantine: list, show, release, purge'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "console" -d 'The web console\'s password file'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "approve" -d 'Approve an object waiting for approval on the sending node, signed with your key'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "reject" -d 'Reject an object waiting for approval: it goes to quarantine (approval_rejected)'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "approvals" -d 'Objects waiting for approval on the sending node'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "completions" -d 'Print the shell completion script for SHELL on standard output'
complete -c isogate -n "__fish_isogate_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand init" -l link -d 'Link type of the lab\'s channels' -r -f -a "quic\t'QUIC with mutual TLS'
diode\t'One-way UDP with forward error correction (nothing is sent back)'"
complete -c isogate -n "__fish_isogate_using_subcommand init" -l port-base -d 'Links listen on N and N+1' -r
complete -c isogate -n "__fish_isogate_using_subcommand init" -l clamd -d 'Turn antivirus scanning on in the lab policies: clamd at unix:PATH or tcp:HOST:PORT' -r
complete -c isogate -n "__fish_isogate_using_subcommand init" -l suite -d 'The pair\'s suite: `default` (Ed25519, SHA-256, AES-256-GCM) or `gm` (SM2, HMAC-SM3, SM4-GCM): the nodes\' signing and data keys and `[node] suite`' -r
complete -c isogate -n "__fish_isogate_using_subcommand init" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand run" -l config -d 'The node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand run" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l dir -d 'Put the labs here instead of a new temporary directory' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l port-base -d 'The first lab\'s port base; each further lab adds 10' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l link -d 'Link types to measure (repeat the flag; default: quic and diode)' -r -f -a "quic\t'QUIC with mutual TLS'
diode\t'One-way UDP with forward error correction (nothing is sent back)'"
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l big-mib -d 'The large file, in MiB; 0 skips its figure' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l huge-mib -d 'The very large file of the memory figure, in MiB; 0 skips it' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l small-files -d 'How many 4 KiB files; 0 skips their figure' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l parallel -d 'How many files of `--parallel-mib` are dropped at once for the parallel figure; 0 skips it' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l parallel-mib -d 'Each file of the parallel figure, in MiB' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l latency-secs -d 'Seconds of the 100 files/s latency run; 0 skips it' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l inspect-mib -d 'Size of each generated document (CID-font PDF, OFD, legacy Word) of the content-inspection figures, in MiB; 0 skips them' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l repeat-window-s -d 'The diode lab\'s repeat window in seconds (0: no repeats; default: the lab\'s 600), to measure what repeats cost the objects sent meanwhile' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l diode-rate-mbit -d 'The diode lab\'s pacing in Mbit/s (default: the lab\'s 4,000), to measure what the nodes keep up with on a machine faster than the lab\'s default assumes' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l only -d 'Measure only these figures (repeat the flag; default: all). The machine\'s limits are always printed' -r -f -a "inspect\t'Content inspection of generated documents, on one core'
files\t'Idle CPU, the large file, 4 KiB files per second and the latency at 100 files/s'
streams\t'The stream channel\'s added latency and highest rate without loss'
messages\t'Messages per second through the message API and their latency at 1,000/s'
memory\t'Peak resident memory of each node while the very large file crosses'"
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l suite -d 'The pairs\' suites to measure, each on its own labs in the same run (repeat the flag: `--suite default --suite gm`; default: default)' -r
complete -c isogate -n "__fish_isogate_using_subcommand bench" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand demo" -l dir -d 'Put the lab here instead of a new temporary directory' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand demo" -l port-base -d 'Links listen on N and N+1' -r
complete -c isogate -n "__fish_isogate_using_subcommand demo" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand check" -l config -d 'The node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand check" -l format -d 'Report format' -r -f -a "text\t'A readable report'
json\t'One JSON document'"
complete -c isogate -n "__fish_isogate_using_subcommand check" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -f -a "verify" -d 'Recompute the whole log and its signed checkpoints; non-zero exit on any tampering'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -f -a "query" -d 'Print the records that match every filter given'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -f -a "prove" -d 'Write an inclusion proof of an object\'s records against the latest checkpoint'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -f -a "verify-proof" -d 'Check a proof offline with the node\'s public key'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -f -a "reconcile" -d 'List objects sent but never landed, and landed but never sent; non-zero if any'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -f -a "export" -d 'Export the records for a security management centre, all or only the new ones'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -f -a "report" -d 'Sum up a period per day and channel: crossed, refused by reason, masked, quarantined, lost, key and policy changes, and whether the log and the peer\'s witness verify'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and not __fish_seen_subcommand_from verify query prove verify-proof reconcile export report help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from verify" -l key -d 'The node\'s signing public key (hex file) to pin; default: DIR/node.pub' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from verify" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l since -d 'At or after this time: RFC 3339 with any offset, a wall time or date in --tz, now/today/yesterday, -1h/-7d, or ms since the epoch' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l until -d 'Before this time (the forms of --since)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l tz -d 'Time zone to read and show times in: UTC, an IANA name (Asia/Shanghai) or an offset (+08:00); default: the system\'s' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l channel -d 'Channel names (comma-separated or repeated)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l not-channel -d 'Channel names to leave out' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l event -d 'Events (taken, accepted, refused, sealed, sent, confirmed, retired, landed, quarantined, lost, resent, witnessed, …), comma-separated or repeated' -r -f -a "config_loaded\t''
stopped\t''
taken\t''
accepted\t''
refused\t''
sealed\t''
sent\t''
confirmed\t''
landed\t''
quarantined\t''
duplicate\t''
link_up\t''
link_down\t''
witnessed\t''
masked\t''
scan_deferred\t''
policy_reloaded\t''
policy_refused\t''
key_switched\t''
retired\t''
lost\t''
resent\t''
clock_step\t''
link_mismatch\t''
quarantine_released\t''
quarantine_release_refused\t''
quarantine_purged\t''
approval_pending\t''
approved\t''
approval_rejected\t''
approval_request_refused\t''
approval_waived\t''
console_login\t''
console_login_failed\t''
stream_started\t''
stream_stopped\t''
message_accepted\t''
message_refused\t''
message_delivered\t''
message_duplicate\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l not-event -d 'Events to leave out' -r -f -a "config_loaded\t''
stopped\t''
taken\t''
accepted\t''
refused\t''
sealed\t''
sent\t''
confirmed\t''
landed\t''
quarantined\t''
duplicate\t''
link_up\t''
link_down\t''
witnessed\t''
masked\t''
scan_deferred\t''
policy_reloaded\t''
policy_refused\t''
key_switched\t''
retired\t''
lost\t''
resent\t''
clock_step\t''
link_mismatch\t''
quarantine_released\t''
quarantine_release_refused\t''
quarantine_purged\t''
approval_pending\t''
approved\t''
approval_rejected\t''
approval_request_refused\t''
approval_waived\t''
console_login\t''
console_login_failed\t''
stream_started\t''
stream_stopped\t''
message_accepted\t''
message_refused\t''
message_delivered\t''
message_duplicate\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l verdict -d 'accept or reject (also: accepted, allow; rejected, deny)' -r -f -a "accept\t''
reject\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l reason -d 'Reason codes (type_mismatch, keyword, …), comma-separated or repeated' -r -f -a "symlink\t''
hard_link\t''
not_regular_file\t''
name_not_utf8\t''
name_refused\t''
extension_refused\t''
size_limit\t''
type_refused\t''
type_mismatch\t''
bad_signature\t''
bad_manifest\t''
wrong_channel\t''
chunk_hash\t''
content_hash\t''
size_mismatch\t''
peer_refused\t''
archive_limit\t''
archive_path\t''
archive_ambiguous\t''
content_unreadable\t''
text_encoding\t''
active_content\t''
keyword_match\t''
classification_marking\t''
personal_data\t''
polyglot\t''
malware\t''
scan_failed\t''
approval_rejected\t''
approval_expired\t''
approval_missing\t''
message_malformed\t''
schema_violation\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l not-reason -d 'Reason codes to leave out (records without a reason stay)' -r -f -a "symlink\t''
hard_link\t''
not_regular_file\t''
name_not_utf8\t''
name_refused\t''
extension_refused\t''
size_limit\t''
type_refused\t''
type_mismatch\t''
bad_signature\t''
bad_manifest\t''
wrong_channel\t''
chunk_hash\t''
content_hash\t''
size_mismatch\t''
peer_refused\t''
archive_limit\t''
archive_path\t''
archive_ambiguous\t''
content_unreadable\t''
text_encoding\t''
active_content\t''
keyword_match\t''
classification_marking\t''
personal_data\t''
polyglot\t''
malware\t''
scan_failed\t''
approval_rejected\t''
approval_expired\t''
approval_missing\t''
message_malformed\t''
schema_violation\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l name -d 'Name pattern (`*` and `?`); repeat for several (names may hold commas)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l not-name -d 'Name pattern to leave out; may be repeated' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l object -d 'Object ids (32 hex digits), comma-separated or repeated' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l sha256 -d 'SHA-256 of the content (64 hex digits, either case), comma-separated or repeated' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l sm3 -d 'SM3 of the content, as a log of the `gm` suite records it (64 hex digits), comma-separated or repeated' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l format -d 'Output format' -r -f -a "table\t'Aligned columns'
json\t'One JSON record per line'
csv\t'CSV with a header line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from query" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from prove" -l out -d 'Write the proof here instead of standard output' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from prove" -l key -d 'The node\'s signing public key (hex file) to pin; default: DIR/node.pub' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from prove" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from prove" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from verify-proof" -l key -d 'The node\'s signing public key (hex file)' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from verify-proof" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from verify-proof" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from reconcile" -l key -d 'The sender\'s signing public key (hex file), as pinned in the receiver\'s config; default: SENDER_DIR/node.pub' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from reconcile" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from reconcile" -l strict -d 'Also fail when the receiver witnessed none of the sender\'s checkpoints'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from reconcile" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l since -d 'At or after this time: RFC 3339 with any offset, a wall time or date in --tz, now/today/yesterday, -1h/-7d, or ms since the epoch' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l until -d 'Before this time (the forms of --since)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l tz -d 'Time zone to read and show times in: UTC, an IANA name (Asia/Shanghai) or an offset (+08:00); default: the system\'s' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l channel -d 'Channel names (comma-separated or repeated)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l not-channel -d 'Channel names to leave out' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l event -d 'Events (taken, accepted, refused, sealed, sent, confirmed, retired, landed, quarantined, lost, resent, witnessed, …), comma-separated or repeated' -r -f -a "config_loaded\t''
stopped\t''
taken\t''
accepted\t''
refused\t''
sealed\t''
sent\t''
confirmed\t''
landed\t''
quarantined\t''
duplicate\t''
link_up\t''
link_down\t''
witnessed\t''
masked\t''
scan_deferred\t''
policy_reloaded\t''
policy_refused\t''
key_switched\t''
retired\t''
lost\t''
resent\t''
clock_step\t''
link_mismatch\t''
quarantine_released\t''
quarantine_release_refused\t''
quarantine_purged\t''
approval_pending\t''
approved\t''
approval_rejected\t''
approval_request_refused\t''
approval_waived\t''
console_login\t''
console_login_failed\t''
stream_started\t''
stream_stopped\t''
message_accepted\t''
message_refused\t''
message_delivered\t''
message_duplicate\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l not-event -d 'Events to leave out' -r -f -a "config_loaded\t''
stopped\t''
taken\t''
accepted\t''
refused\t''
sealed\t''
sent\t''
confirmed\t''
landed\t''
quarantined\t''
duplicate\t''
link_up\t''
link_down\t''
witnessed\t''
masked\t''
scan_deferred\t''
policy_reloaded\t''
policy_refused\t''
key_switched\t''
retired\t''
lost\t''
resent\t''
clock_step\t''
link_mismatch\t''
quarantine_released\t''
quarantine_release_refused\t''
quarantine_purged\t''
approval_pending\t''
approved\t''
approval_rejected\t''
approval_request_refused\t''
approval_waived\t''
console_login\t''
console_login_failed\t''
stream_started\t''
stream_stopped\t''
message_accepted\t''
message_refused\t''
message_delivered\t''
message_duplicate\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l verdict -d 'accept or reject (also: accepted, allow; rejected, deny)' -r -f -a "accept\t''
reject\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l reason -d 'Reason codes (type_mismatch, keyword, …), comma-separated or repeated' -r -f -a "symlink\t''
hard_link\t''
not_regular_file\t''
name_not_utf8\t''
name_refused\t''
extension_refused\t''
size_limit\t''
type_refused\t''
type_mismatch\t''
bad_signature\t''
bad_manifest\t''
wrong_channel\t''
chunk_hash\t''
content_hash\t''
size_mismatch\t''
peer_refused\t''
archive_limit\t''
archive_path\t''
archive_ambiguous\t''
content_unreadable\t''
text_encoding\t''
active_content\t''
keyword_match\t''
classification_marking\t''
personal_data\t''
polyglot\t''
malware\t''
scan_failed\t''
approval_rejected\t''
approval_expired\t''
approval_missing\t''
message_malformed\t''
schema_violation\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l not-reason -d 'Reason codes to leave out (records without a reason stay)' -r -f -a "symlink\t''
hard_link\t''
not_regular_file\t''
name_not_utf8\t''
name_refused\t''
extension_refused\t''
size_limit\t''
type_refused\t''
type_mismatch\t''
bad_signature\t''
bad_manifest\t''
wrong_channel\t''
chunk_hash\t''
content_hash\t''
size_mismatch\t''
peer_refused\t''
archive_limit\t''
archive_path\t''
archive_ambiguous\t''
content_unreadable\t''
text_encoding\t''
active_content\t''
keyword_match\t''
classification_marking\t''
personal_data\t''
polyglot\t''
malware\t''
scan_failed\t''
approval_rejected\t''
approval_expired\t''
approval_missing\t''
message_malformed\t''
schema_violation\t''"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l name -d 'Name pattern (`*` and `?`); repeat for several (names may hold commas)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l not-name -d 'Name pattern to leave out; may be repeated' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l object -d 'Object ids (32 hex digits), comma-separated or repeated' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l sha256 -d 'SHA-256 of the content (64 hex digits, either case), comma-separated or repeated' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l sm3 -d 'SM3 of the content, as a log of the `gm` suite records it (64 hex digits), comma-separated or repeated' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l after -d 'Only records with a sequence number above SEQ (the last_seq of the previous run)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l cursor -d 'A file that keeps the cursor: read for --after when that is not given (missing: from the start), rewritten with the last sequence number once the output is flushed' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l format -d 'Output format' -r -f -a "jsonl\t'One JSON record per line, exactly as logged'
syslog\t'One RFC 5424 syslog message per line, as the live export sends them'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l since -d 'Start of the period: RFC 3339 with any offset, a wall time or a date in the --tz zone, now, today, yesterday, -7d, or ms since the epoch (default: 7 days before --until)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l until -d 'End of the period, excluded (same forms; default: now)' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l tz -d 'Time zone of days and times: UTC, an IANA name (Asia/Shanghai) or an offset (+08:00); default: the system\'s zone' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l channel -d 'Only this channel (repeat for several); default: all' -r
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l format -d 'Output format' -r -f -a "text\t'Sections for a terminal'
csv\t'One CSV table (columns: see the README)'
json\t'One JSON document (the report\'s stable field names)'
html\t'A self-contained HTML page with charts, for printing (A4)'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l out -d 'Write the report to this file instead of standard output' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l key -d 'The node\'s signing public key (hex file) to pin when verifying; default: DIR/node.pub' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l peer -d 'The peer node\'s audit directory: check that the peer witnessed this node\'s checkpoints and that they match this log' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Recompute the whole log and its signed checkpoints; non-zero exit on any tampering'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "query" -d 'Print the records that match every filter given'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "prove" -d 'Write an inclusion proof of an object\'s records against the latest checkpoint'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify-proof" -d 'Check a proof offline with the node\'s public key'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "reconcile" -d 'List objects sent but never landed, and landed but never sent; non-zero if any'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "export" -d 'Export the records for a security management centre, all or only the new ones'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "report" -d 'Sum up a period per day and channel: crossed, refused by reason, masked, quarantined, lost, key and policy changes, and whether the log and the peer\'s witness verify'
complete -c isogate -n "__fish_isogate_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand keygen" -l name -d 'The node name (names the files)' -r
complete -c isogate -n "__fish_isogate_using_subcommand keygen" -l approver -d 'Make an approver\'s key pair instead, for a channel\'s [approval]: NAME.approver.key (PKCS#8 PEM, 0600, kept by the approver) and NAME.approver.pub (64 hex digits; an SM2 key\'s 130 with --suite gm, for a gm pair: its approvers sign with `isogate approve`)' -r
complete -c isogate -n "__fish_isogate_using_subcommand keygen" -l data-key -d 'Make a node\'s data key file instead (`[node] data_key`: seals the spool and the quarantine at rest, AES-256-GCM, or SM4-GCM with --suite gm), mode 0600; when FILE exists, a new key is put first (a rotation: it seals from the next SIGHUP, the older keys still open what they sealed)' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand keygen" -l out -d 'Directory for the key files (private keys are written mode 0600)' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand keygen" -l suite -d 'The suite of the signing key, or of the approver\'s key: `default` (Ed25519) or `gm` (SM2, GB/T 32918.2, user id 1234567812345678; PKCS#8 PEM that OpenSSL reads, the public key as 130 hex digits). The TLS key is ECDSA P-256 under both. With --data-key: the cipher (AES-256-GCM or SM4-GCM); a rotation keeps the current key\'s unless given. Default: default' -r
complete -c isogate -n "__fish_isogate_using_subcommand keygen" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand keygen" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand resend" -l config -d 'The sending node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand resend" -l since -d 'Objects retired at or after this time: RFC 3339 with any offset, a wall time or date in --tz, now/today/yesterday, -1h/-30m, or ms since the epoch' -r
complete -c isogate -n "__fish_isogate_using_subcommand resend" -l until -d 'Objects retired before this time (the forms of --since)' -r
complete -c isogate -n "__fish_isogate_using_subcommand resend" -l tz -d 'Time zone of wall times and dates in --since/--until: UTC, an IANA name (Asia/Shanghai) or an offset (+08:00); default: the system\'s' -r
complete -c isogate -n "__fish_isogate_using_subcommand resend" -l wait -d 'Seconds to wait for the running node\'s answer' -r
complete -c isogate -n "__fish_isogate_using_subcommand resend" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand resend" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and not __fish_seen_subcommand_from list show release purge help" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and not __fish_seen_subcommand_from list show release purge help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and not __fish_seen_subcommand_from list show release purge help" -f -a "list" -d 'Every entry: channel, object id, name, side, reason, detail, size, age and time'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and not __fish_seen_subcommand_from list show release purge help" -f -a "show" -d 'One entry: its reason file, how its copy rests (plaintext or sealed, with which key), whether it may be released, and its audit records (read only)'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and not __fish_seen_subcommand_from list show release purge help" -f -a "release" -d 'Let entries cross again, through the full policy of both nodes (never an override)'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and not __fish_seen_subcommand_from list show release purge help" -f -a "purge" -d 'Remove entries for good (their audit records stay)'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and not __fish_seen_subcommand_from list show release purge help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from list" -l config -d 'The node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from list" -l channel -d 'Only this channel' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from list" -l reason -d 'Only this reason code' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from list" -l older-than -d 'Only entries refused longer ago than this age (30d, 12h, 1h30m) or before a time' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from list" -l tz -d 'Time zone of the times shown (UTC, Asia/Shanghai, +08:00); default: the system\'s' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from list" -l format -d 'Output format' -r -f -a "table\t'Aligned columns'
json\t'One JSON object per entry, one a line'"
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from list" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from show" -l config -d 'The node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from show" -l tz -d 'Time zone of the times shown; default: the system\'s' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from show" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from release" -l config -d 'The node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from release" -l note -d 'Why (recorded in the audit log)' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from release" -l wait -d 'Seconds to wait for the running node\'s answer' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from release" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from release" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from purge" -l config -d 'The node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from purge" -l older-than -d 'Every entry refused longer ago than this age (30d, 12h) or before a time' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from purge" -l channel -d 'With --older-than: only this channel' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from purge" -l tz -d 'Time zone of a wall time given to --older-than; default: the system\'s' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from purge" -l note -d 'Why (recorded in the audit log)' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from purge" -l wait -d 'Seconds to wait for the running node\'s answer' -r
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from purge" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every entry: channel, object id, name, side, reason, detail, size, age and time'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from help" -f -a "show" -d 'One entry: its reason file, how its copy rests (plaintext or sealed, with which key), whether it may be released, and its audit records (read only)'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from help" -f -a "release" -d 'Let entries cross again, through the full policy of both nodes (never an override)'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Remove entries for good (their audit records stay)'
complete -c isogate -n "__fish_isogate_using_subcommand quarantine; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand console; and not __fish_seen_subcommand_from passwd help" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand console; and not __fish_seen_subcommand_from passwd help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand console; and not __fish_seen_subcommand_from passwd help" -f -a "passwd" -d 'Set a user\'s password (read from standard input) in a console password file'
complete -c isogate -n "__fish_isogate_using_subcommand console; and not __fish_seen_subcommand_from passwd help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand console; and __fish_seen_subcommand_from passwd" -l users -d 'The password file (made when missing)' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand console; and __fish_seen_subcommand_from passwd" -l user -d 'The user name: letters, digits, \'.\', \'_\', \'-\'' -r
complete -c isogate -n "__fish_isogate_using_subcommand console; and __fish_seen_subcommand_from passwd" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand console; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand console; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Set a user\'s password (read from standard input) in a console password file'
complete -c isogate -n "__fish_isogate_using_subcommand console; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand approve" -l key -d 'Your approver key (PKCS#8 PEM, from `isogate keygen --approver NAME`)' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand approve" -l config -d 'The sending node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand approve" -l note -d 'A note, kept with the approval and in the audit log' -r
complete -c isogate -n "__fish_isogate_using_subcommand approve" -l wait -d 'Seconds to wait for the running node\'s answer' -r
complete -c isogate -n "__fish_isogate_using_subcommand approve" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand approve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand reject" -l key -d 'Your approver key (PKCS#8 PEM)' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand reject" -l config -d 'The sending node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand reject" -l note -d 'Why (required; kept in the audit log and the quarantine reason)' -r
complete -c isogate -n "__fish_isogate_using_subcommand reject" -l wait -d 'Seconds to wait for the running node\'s answer' -r
complete -c isogate -n "__fish_isogate_using_subcommand reject" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand reject" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and not __fish_seen_subcommand_from list help" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and not __fish_seen_subcommand_from list help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and not __fish_seen_subcommand_from list help" -f -a "list" -d 'Every object waiting for approval: id, channel, approvals so far, since, expiry, name'
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and not __fish_seen_subcommand_from list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and __fish_seen_subcommand_from list" -l config -d 'The sending node\'s configuration file' -r -F
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and __fish_seen_subcommand_from list" -l tz -d 'Time zone of the times shown (UTC, Asia/Shanghai, +08:00); default: the system\'s' -r
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and __fish_seen_subcommand_from list" -l format -d 'Output format' -r -f -a "table\t'Aligned columns'
json\t'One JSON object per entry, one a line'"
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and __fish_seen_subcommand_from list" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every object waiting for approval: id, channel, approvals so far, since, expiry, name'
complete -c isogate -n "__fish_isogate_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand completions" -l log-format -d 'Log format on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c isogate -n "__fish_isogate_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "init" -d 'Write a ready two-node lab (court <-> internet) into DIR'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "run" -d 'Run a node until SIGTERM or SIGINT'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "bench" -d 'Measure this machine\'s limits and the gateway\'s figures, as ratios'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "demo" -d 'Make a lab, run both nodes here, drop sample files, and show what crosses'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "check" -d 'Validate a configuration and the policies it names; list every problem'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "audit" -d 'Verify, query, prove from, reconcile, export and report on audit logs'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "keygen" -d 'Make a node\'s signing key pair and TLS certificate and key'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "resend" -d 'Ask the running diode sender to send held objects again (after a `lost` report)'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "quarantine" -d 'The security officer\'s work on a node\'s quarantine: list, show, release, purge'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "console" -d 'The web console\'s password file'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "approve" -d 'Approve an object waiting for approval on the sending node, signed with your key'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "reject" -d 'Reject an object waiting for approval: it goes to quarantine (approval_rejected)'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "approvals" -d 'Objects waiting for approval on the sending node'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "completions" -d 'Print the shell completion script for SHELL on standard output'
complete -c isogate -n "__fish_isogate_using_subcommand help; and not __fish_seen_subcommand_from init run bench demo check audit keygen resend quarantine console approve reject approvals completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify" -d 'Recompute the whole log and its signed checkpoints; non-zero exit on any tampering'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "query" -d 'Print the records that match every filter given'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "prove" -d 'Write an inclusion proof of an object\'s records against the latest checkpoint'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify-proof" -d 'Check a proof offline with the node\'s public key'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "reconcile" -d 'List objects sent but never landed, and landed but never sent; non-zero if any'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "export" -d 'Export the records for a security management centre, all or only the new ones'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "report" -d 'Sum up a period per day and channel: crossed, refused by reason, masked, quarantined, lost, key and policy changes, and whether the log and the peer\'s witness verify'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from quarantine" -f -a "list" -d 'Every entry: channel, object id, name, side, reason, detail, size, age and time'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from quarantine" -f -a "show" -d 'One entry: its reason file, how its copy rests (plaintext or sealed, with which key), whether it may be released, and its audit records (read only)'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from quarantine" -f -a "release" -d 'Let entries cross again, through the full policy of both nodes (never an override)'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from quarantine" -f -a "purge" -d 'Remove entries for good (their audit records stay)'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from console" -f -a "passwd" -d 'Set a user\'s password (read from standard input) in a console password file'
complete -c isogate -n "__fish_isogate_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "list" -d 'Every object waiting for approval: id, channel, approvals so far, since, expiry, name'
