"""Running commands of the test bed: in the root namespace, a server host's or a VM's netns."""

import subprocess


class CommandError(RuntimeError):
    """A bed command exited non-zero; the message carries its argv and stderr."""


def run(argv, timeout=10, check=True):
    """Run argv, return the CompletedProcess (text); raise CommandError on failure if check."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise CommandError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


def in_host(host):
    """Prefix that runs a command in a Mininet host's network namespace.

    nsenter joins the netns only and keeps the root mount namespace: Mininet hosts have a private
    mount namespace in which /run/netns entries made after the host started are empty files, so
    `ip link set ... netns NAME` fails there with "Invalid argument".
    """
    return ["nsenter", f"--net=/proc/{host.pid}/ns/net"]


def in_netns(netns):
    """Prefix that runs a command in a named network namespace."""
    return ["ip", "netns", "exec", netns]
