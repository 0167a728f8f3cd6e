#!/usr/bin/perl
# Verify the DKIM signatures of a message with Mail::DKIM (an implementation other than
# dkimpy), resolving keys through a test DNS server on 127.0.0.1.
#
# usage: perl dkimverify.pl PORT < message
# prints one line per signature: RESULT<TAB>DOMAIN<TAB>SELECTOR<TAB>ALGORITHM<TAB>DETAIL
# and "ed25519-support<TAB>yes|no" first, so a test can tell a missing ed25519 module
# (Mail::DKIM before 1.20230630, or without Crypt::PK::Ed25519) from a failed signature.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my $port = shift @ARGV or die "usage: $0 PORT < message\n";
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 1,
    udp_timeout => 2, tcp_timeout => 2, retry => 1));

my $ed25519 = eval { require Mail::DKIM::Algorithm::ed25519_sha256; 1 } ? "yes" : "no";
print "ed25519-support\t$ed25519\n";

my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\015?\012\z//;
    $dkim->PRINT("$line\015\012");
}
$dkim->CLOSE;

foreach my $sig ($dkim->signatures) {
    my $detail = $sig->result_detail // '';
    $detail =~ s/\s+/ /g;
    print join("\t", $sig->result // '', $sig->domain // '', $sig->selector // '',
               $sig->algorithm // '', $detail), "\n";
}
