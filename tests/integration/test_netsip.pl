#!/usr/bin/perl
# Calls between two Perl Net::SIP (Debian 12: 0.835) user agents through the server.
#
# Each test starts the real binary on free ports with its own database
# (SB_BIN, default build/switchboard under SB_SRC), provisions users with the
# CLI, and stops it with SIGTERM at the end: exit code 0 and no sanitizer
# report in its output, or the test fails.
#
# Covered: REGISTER with digest authentication (Net::SIP::Simple with
# registrar and auth; it skips the SHA-256 challenge and answers the MD5 one),
# the binding in `switchboard reg list`; a wrong password never registers;
# alice calls bob (an auto-answering UAS set up with listen) through the
# server over UDP and over TCP: her INVITE is challenged with 407, the call is
# established on both sides, RTP flows end to end (bob echoes what alice
# sends), then a BYE from the caller or from the callee goes through the
# server and both ends see the hang-up.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

use Net::SIP qw(:all);
use Net::SIP::Dispatcher::Eventloop;

$| = 1;

my $SRC = $ENV{SB_SRC} || abs_path(File::Spec->catdir(dirname(abs_path($0)), '..', '..'));
my $BIN = $ENV{SB_BIN} || File::Spec->catfile($SRC, 'build', 'switchboard');
# Net::SIP debug output on stderr: SB_NETSIP_DEBUG=10 (or higher)
Net::SIP::Debug->level($ENV{SB_NETSIP_DEBUG}) if $ENV{SB_NETSIP_DEBUG};

# the prototype puts both arguments in scalar context: a failed match is false, not ()
sub check($$) { my ($ok, $msg) = @_; die "$msg\n" unless $ok; }

# ---------------------------------------------------------------- the server

sub free_port {
    for (1 .. 200) {
        my $port = 20000 + int(rand(40000));
        my $u = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1', LocalPort => $port)
            or next;
        my $t = IO::Socket::INET->new(Proto => 'tcp', LocalAddr => '127.0.0.1', LocalPort => $port,
                                      Listen => 1, ReuseAddr => 0)
            or next;
        close $u; close $t;
        return $port;
    }
    die "no free port\n";
}

sub run_cli {
    my ($db, @args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        exec($BIN, @args, '--db', $db) or exit 127;
    }
    my $out = do { local $/; <$fh> };
    close $fh;
    return ($? >> 8, $out // '');
}

sub new_server {
    my $tmp = tempdir('sb-netsip-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{SB_KEEP});
    my $s = { tmp => $tmp, port => free_port(), db => "$tmp/switchboard.db", log => "$tmp/server.log" };
    $s->{host} = "127.0.0.1:$s->{port}";
    return $s;
}

sub add_user {
    my ($s, $user, $pw) = @_;
    my ($rc, $out) = run_cli($s->{db}, 'user', 'add', "$user\@127.0.0.1", '--password', $pw);
    check($rc == 0, "user add $user: $rc $out");
}

sub ping {
    my ($s) = @_;
    my $sock = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1', PeerAddr => '127.0.0.1',
                                     PeerPort => $s->{port}) or return 0;
    my $lport = $sock->sockport;
    my $branch = sprintf('z9hG4bK%08x', int(rand(2**32)));
    my $msg = "OPTIONS sip:$s->{host} SIP/2.0\r\n"
        . "Via: SIP/2.0/UDP 127.0.0.1:$lport;branch=$branch;rport\r\n"
        . "Max-Forwards: 70\r\nFrom: <sip:ping\@example.org>;tag=p$lport\r\n"
        . "To: <sip:$s->{host}>\r\nCall-ID: ping-$branch\r\nCSeq: 1 OPTIONS\r\n"
        . "Content-Length: 0\r\n\r\n";
    $sock->send($msg) or return 0;
    my $rin = '';
    vec($rin, fileno($sock), 1) = 1;
    return 0 unless select(my $rout = $rin, undef, undef, 0.3);
    my $buf = '';
    $sock->recv($buf, 65535);
    return $buf =~ m{^SIP/2\.0 200 };
}

sub start_server {
    my ($s) = @_;
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        open(STDOUT, '>>', $s->{log}) or exit 127;
        open(STDERR, '>&', \*STDOUT);
        exec($BIN, 'serve', '--db', $s->{db}, '--workers', $s->{workers} || 1,
             '--listen', "udp:$s->{host}", '--listen', "tcp:$s->{host}", '--log-level', 'debug')
            or exit 127;
    }
    $s->{pid} = $pid;
    my $deadline = time() + 15;
    while (time() < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $s->{pid};
            die "server exited at start (" . ($? >> 8) . "): " . log_tail($s) . "\n";
        }
        return if ping($s);
        sleep 0.05;
    }
    die "server did not answer OPTIONS: " . log_tail($s) . "\n";
}

sub log_text {
    my ($s) = @_;
    open(my $fh, '<', $s->{log}) or return '';
    local $/;
    return <$fh> // '';
}

sub log_tail {
    my @l = split /\n/, log_text($_[0]);
    return join("\n", @l > 40 ? @l[-40 .. -1] : @l);
}

# SIGTERM, then exit code 0 and no sanitizer report (when $check_clean)
sub stop_server {
    my ($s, $check_clean) = @_;
    my $pid = delete $s->{pid} or return;
    kill 'TERM', $pid;
    my $deadline = time() + 30;
    my $done = 0;
    while (time() < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) { $done = 1; last }
        sleep 0.05;
    }
    if (!$done) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        die "server did not stop on SIGTERM\n";
    }
    my $status = $?;
    return unless $check_clean;
    my $text = log_text($s);
    check(($status & 127) == 0 && ($status >> 8) == 0,
          sprintf("server exited with status %d (signal %d): %s", $status >> 8, $status & 127,
                  log_tail($s)));
    check($text !~ /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/,
          "sanitizer report: " . log_tail($s));
}

sub bindings {
    my ($s, $aor) = @_;
    my ($rc, $out) = run_cli($s->{db}, 'reg', 'list', $aor);
    return () if $rc != 0;
    my @lines = split /\n/, $out;
    shift @lines;
    return map { [ split ' ', $_ ] } grep { /\S/ } @lines;
}

# the registrar writes behind (every 100 ms): poll for the contact
sub wait_binding {
    my ($s, $aor, $contact) = @_;
    my $deadline = time() + 5;
    while (1) {
        my @rows = bindings($s, $aor);
        for my $r (@rows) {
            return $r if $r->[1] eq $contact;
        }
        check(time() < $deadline, "no binding $contact for $aor: "
              . join('; ', map { join(' ', @$_) } @rows));
        sleep 0.1;
    }
}

# ---------------------------------------------------------------- the user agents

my $loop;    # one event loop for every UA of a test: they run in this process

sub new_ua {
    my ($s, $user, $pw, $proto) = @_;
    $proto ||= 'udp';
    my $sock;
    if ($proto eq 'udp') {
        $sock = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1', LocalPort => 0)
            or die "udp socket: $!";
    } else {
        $sock = IO::Socket::INET->new(Proto => 'tcp', LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Listen => 10, ReuseAddr => 1)
            or die "tcp socket: $!";
    }
    my $port = $sock->sockport;
    # Net::SIP leaves ;transport=tcp out of the Contact of a TCP leg, and a
    # transport-less sip: URI means UDP (RFC 3263 4.1): say it ourselves, on
    # the leg (Contact of INVITE and 2xx) and for REGISTER (in <>, or it
    # would be a header parameter, RFC 3261 20.10)
    my $leg = Net::SIP::Leg->new(sock => $sock, proto => $proto,
        $proto eq 'tcp' ? (contact => "sip:127.0.0.1:$port;transport=tcp") : ());
    my $target = $s->{host};
    my $ua = Net::SIP::Simple->new(
        leg            => $leg,
        loop           => $loop,
        outgoing_proxy => $target,
        registrar      => $target,
        domain         => '127.0.0.1',
        from           => "sip:$user\@127.0.0.1",
        auth           => [ $user, $pw ],
        $proto eq 'tcp' ? (contact => "<sip:$user\@127.0.0.1:$port;transport=tcp>") : (),
    );
    return ($ua, $port);
}

# runs the shared loop until $$var is true or the timeout
sub wait_for {
    my ($ua, $var, $timeout, $what) = @_;
    $ua->loop($timeout, $var) unless $$var;
    check($$var, "timed out waiting for $what");
}

# ---------------------------------------------------------------- tests

sub test_register_with_auth {
    my ($s) = @_;
    add_user($s, 'alice', 'alicepw');
    my ($alice, $port) = new_ua($s, 'alice', 'alicepw');
    my $expires = $alice->register(expires => 300);
    check(defined $expires && $expires > 0 && $expires <= 300,
          "register failed: " . ($alice->error // 'no error') . "\n" . log_tail($s));
    my $row = wait_binding($s, 'alice@127.0.0.1', "sip:alice\@127.0.0.1:$port");
    check($row->[2] > 250 && $row->[2] <= 300, "expiry: @$row");
    check(uc($row->[4]) eq 'UDP', "transport: @$row");
    my $log = log_text($s);
    check($log =~ /send to udp:127\.0\.0\.1:$port \d+ bytes: SIP\/2\.0 401 /, "REGISTER not challenged");
    check($log =~ /send to udp:127\.0\.0\.1:$port \d+ bytes: SIP\/2\.0 200 /, "no 200 for the REGISTER");
    # and unregister: expires 0 removes the binding
    # (the 200 lists no binding, so register() would return undef: use cb_final)
    my $unreg;
    $alice->register(expires => 0, cb_final => sub { $unreg = shift });
    wait_for($alice, \$unreg, 10, "the answer to the unREGISTER");
    check($unreg eq 'OK', "unregistering failed: $unreg " . ($alice->error // ''));
    my $deadline = time() + 5;
    while (bindings($s, 'alice@127.0.0.1') && time() < $deadline) { sleep 0.1 }
    check(!bindings($s, 'alice@127.0.0.1'), "binding left after unregistering");
    $alice->cleanup;
}

sub test_register_wrong_password {
    my ($s) = @_;
    add_user($s, 'alice', 'alicepw');
    my ($alice, $port) = new_ua($s, 'alice', 'not-her-password');
    my $expires = $alice->register(expires => 300);
    check(!defined $expires, "registered with a wrong password (expires " . ($expires // "") . ")");
    check(($alice->error // '') =~ /\b40[13]\b/, "unexpected error: " . ($alice->error // 'none'));
    check(log_text($s) =~ /authentication failed for alice\@127\.0\.0\.1/,
          "server did not log the failed authentication");
    sleep 0.3;
    check(!bindings($s, 'alice@127.0.0.1'), "binding created with a wrong password");
    $alice->cleanup;
}

# The debug log names every message's Call-ID (README "Running it"). Net::SIP
# writes the header as "Call-id:" (ucfirst of the lower-case name), which is
# the same header: names are case-insensitive (RFC 3261 7.3.1).
sub test_debug_log_names_call_id_in_any_case {
    my ($s) = @_;
    add_user($s, 'alice', 'alicepw');
    my ($alice, $port) = new_ua($s, 'alice', 'alicepw');
    my $callid = sprintf('netsip-log-%08x', int(rand(2**32)));
    my $expires = $alice->register(expires => 300, callid => $callid);
    check(defined $expires, "register failed: " . ($alice->error // '?'));
    my @lines = grep { /127\.0\.0\.1:$port \d+ bytes: / } split /\n/, log_text($s);
    check(@lines == 4, "expected 4 messages with alice, got " . scalar(@lines));
    my @bad = grep { !/\[\Q$callid\E\]$/ } @lines;
    check(!@bad, "log lines without the Call-ID $callid:\n" . join("\n", @bad));
    $alice->cleanup;
}

# alice calls bob; $hangup_by says who sends the BYE
sub call_test {
    my ($s, $proto, $hangup_by) = @_;
    add_user($s, 'alice', 'alicepw');
    add_user($s, 'bob', 'bobpw');
    my ($alice, $aport) = new_ua($s, 'alice', 'alicepw', $proto);
    my ($bob, $bport) = new_ua($s, 'bob', 'bobpw', $proto);
    for ([ $alice, 'alice' ], [ $bob, 'bob' ]) {
        my ($ua, $name) = @$_;
        my $e = $ua->register(expires => 300);
        check(defined $e && $e > 0, "$name could not register: " . ($ua->error // '?'));
    }
    for ([ 'alice', $aport ], [ 'bob', $bport ]) {
        my ($u, $p) = @$_;
        my $row = wait_binding($s, "$u\@127.0.0.1", "sip:$u\@127.0.0.1:$p" . ($proto eq 'tcp' ? ';transport=tcp' : ''));
        check(uc($row->[4]) eq uc($proto), "$u registered over $row->[4]");
    }

    # bob: answers every call, echoes the RTP he gets, notes what happens
    my %bob = (established => 0, bye => 0, rtp => 0, cleanup => 0);
    my $bob_call;
    $bob->listen(
        cb_create      => sub { ($bob_call, $bob{invite}) = @_; return 1 },
        cb_established => sub { $bob{established}++ },
        init_media     => $bob->rtp('media_recv_echo', sub { $bob{rtp}++ }, 0),
        recv_bye       => sub { $bob{bye}++ },
        cb_cleanup     => sub { $bob{cleanup}++ },
    );

    # alice: sends 50 packets (1 s of PCMU), counts the echoes
    my %alice = (final => undef, code => undef, bye => 0, echo => 0, rtp_done => 0, bye_final => undef);
    my $sent = 0;
    my $call = $alice->invite("sip:bob\@$s->{host}",
        init_media  => $alice->rtp('media_send_recv',
                                   sub { return $sent++ < 50 ? chr(0xff) x 160 : undef },
                                   1, sub { $alice{echo}++ }),
        cb_rtp_done => sub { $alice{rtp_done}++ },
        cb_final    => sub { my ($status, $c, %info) = @_;
                             $alice{final} = $status; $alice{code} = $info{code} },
        recv_bye    => sub { $alice{bye}++ },
    );
    check($call, "invite failed: " . ($alice->error // '?'));
    wait_for($alice, \$alice{final}, 15, "the final answer to alice's INVITE");
    check($alice{final} eq 'OK', "call failed: $alice{final} " . ($alice{code} // '') . "\n" . log_tail($s));
    wait_for($alice, \$bob{established}, 10, "bob to see the ACK (call established)");
    wait_for($alice, \$alice{rtp_done}, 10, "alice to send her RTP");
    my $deadline = time() + 5;
    $alice->loop(0.2) while $alice{echo} < 40 && time() < $deadline;
    check($bob{rtp} >= 40, "bob received $bob{rtp} of 50 RTP packets");
    check($alice{echo} >= 40, "alice received $alice{echo} echoed RTP packets");

    # what the proxy did to the INVITE on its way to bob (RFC 3261 16.6)
    my $inv = $bob{invite};
    check($inv, "bob kept no INVITE");
    check(!$inv->get_header('proxy-authorization'),
          "alice's credentials for our realm were forwarded to bob: " . $inv->get_header('proxy-authorization'));
    check(($inv->get_header('max-forwards') // '') eq '69', "Max-Forwards not decremented: "
          . ($inv->get_header('max-forwards') // 'none'));
    my @rr = $inv->get_header('record-route');
    check(@rr >= 1 && $rr[0] =~ /127\.0\.0\.1:$s->{port}\b.*;lr/, "no Record-Route of ours: @rr");
    my @via = $inv->get_header('via');
    check(@via == 2 && $via[0] =~ /127\.0\.0\.1:$s->{port}/, "expected our Via on top: @via");
    my $bye_done = 0;
    if ($hangup_by eq 'alice') {
        $call->bye(cb_final => sub { $bye_done = 1; $alice{bye_final} = $_[0] });
        wait_for($alice, \$bye_done, 10, "the answer to alice's BYE");
        wait_for($alice, \$bob{bye}, 5, "bob to see the hang-up");
    } else {
        check($bob_call, "bob has no call object");
        $bob_call->bye(cb_final => sub { $bye_done = 1 });
        wait_for($alice, \$bye_done, 10, "the answer to bob's BYE");
        wait_for($alice, \$alice{bye}, 5, "alice to see the hang-up");
    }
    # the server's view, told apart by alice's and bob's ports
    my $log = log_text($s);
    my ($a_re, $b_re) = ("$proto:127\\.0\\.0\\.1:(?:$aport|\\d+)", "$proto:127\\.0\\.0\\.1:(?:$bport|\\d+)");
    ($a_re, $b_re) = ("udp:127\\.0\\.0\\.1:$aport", "udp:127\\.0\\.0\\.1:$bport") if $proto eq 'udp';
    check(scalar(() = $log =~ /recv from $a_re \d+ bytes: INVITE sip:bob\@/g) == 2,
          "alice's INVITE was not sent twice (without, then with credentials)");
    check($log =~ /recv from $a_re \d+ bytes: INVITE sip:bob\@[^\n]*\n(?:[^\n]*\n){0,5}?[^\n]*send to $a_re \d+ bytes: SIP\/2\.0 407 /,
          "no 407 for alice's INVITE");
    check($log =~ /send to $b_re \d+ bytes: INVITE sip:bob\@127\.0\.0\.1:$bport/,
          "INVITE not forwarded to bob's contact");
    check($log =~ /send to $b_re \d+ bytes: ACK sip:bob\@127\.0\.0\.1:$bport/,
          "the ACK did not reach bob over $proto");
    if ($hangup_by eq 'alice') {
        check($log =~ /recv from $a_re \d+ bytes: BYE /, "the server did not get alice's BYE");
        check($log =~ /send to $b_re \d+ bytes: BYE /, "the BYE was not forwarded to bob");
    } else {
        check($log =~ /recv from $b_re \d+ bytes: BYE /, "the server did not get bob's BYE");
        check($log =~ /send to $a_re \d+ bytes: BYE /, "the BYE was not forwarded to alice");
    }
    $alice->cleanup;
    $bob->cleanup;
}

sub test_call_udp_caller_hangs_up { call_test($_[0], 'udp', 'alice') }
sub test_call_udp_callee_hangs_up { call_test($_[0], 'udp', 'bob') }
sub test_call_tcp_caller_hangs_up { call_test($_[0], 'tcp', 'alice') }
sub test_call_tcp_callee_hangs_up { call_test($_[0], 'tcp', 'bob') }

# two workers: a TCP connection belongs to the worker that accepted it, so
# messages cross workers whenever alice's and bob's connections differ
sub test_call_tcp_two_workers { call_test($_[0], 'tcp', 'alice') }
sub test_call_udp_two_workers { call_test($_[0], 'udp', 'bob') }

# ---------------------------------------------------------------- runner

my @tests = do { no strict 'refs'; sort grep { /^test_/ && defined &{"main::$_"} } keys %main:: };
my %only = map { $_ => 1 } @ARGV;
my $failed = 0;
for my $name (@tests) {
    next if %only && !$only{$name};
    my $t0 = time();
    my $s = new_server();
    $s->{workers} = 2 if $name =~ /two_workers/;
    $loop = Net::SIP::Dispatcher::Eventloop->new;
    my $ok = eval {
        local $SIG{ALRM} = sub { die "test timed out after 120 s\n" };
        alarm 120;
        start_server($s);
        no strict 'refs';
        &{"main::$name"}($s);
        alarm 0;
        1;
    };
    alarm 0;
    my $err = $@;
    my $stop_ok = eval { stop_server($s, $ok); 1 };
    if ($ok && !$stop_ok) { $ok = 0; $err = $@ }
    if ($ok) {
        printf "ok   %-45s %5.1fs\n", $name, time() - $t0;
    } else {
        $failed++;
        printf "FAIL %-45s %5.1fs: %s\n", $name, time() - $t0, $err;
        print "--- server log tail:\n", log_tail($s), "\n---\n";
    }
}
print $failed ? "$failed failed\n" : "all passed\n";
exit($failed ? 1 : 0);
