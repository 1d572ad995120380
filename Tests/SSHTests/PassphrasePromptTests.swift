import Checksum
import Foundation
import SSHTransport
import TestSupport
import Testing

/// An encrypted key for several hosts checked at once: one prompt on the terminal (the other
/// hosts wait for it), echo off, the answer used for every host.
@Suite(.serialized) struct PassphrasePrompt {
  /// An ed25519 key encrypted with `passphrase`, added to the lab hosts' authorized_keys.
  static func encryptedKey(
    in dir: TemporaryDirectory, passphrase: String, authorizedOn lab: TestLab, hosts: Range<Int>
  ) throws -> String {
    let key = dir.file("id_encrypted")
    try keygen(key, type: "ed25519", passphrase: passphrase)
    let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8)
    for index in hosts {
      let authorized = try String(contentsOfFile: lab.authorizedKeys(index), encoding: .utf8)
      try (authorized + publicKey).write(toFile: lab.authorizedKeys(index), atomically: true, encoding: .utf8)
    }
    return key
  }

  @Test func oneSilentPromptForSeveralHosts() throws {
    let lab = try TestLab(hosts: 2, tag: "p")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let passphrase = "tr0ub4dor-\(getpid())"
    let key = try Self.encryptedKey(in: dir, passphrase: passphrase, authorizedOn: lab, hosts: 0..<2)
    let driver = try Self.writeDriver(in: dir)
    let run = try Tools.run([
      "python3", driver, passphrase, smcpair, "hosts", "check", "ssh://root@\(lab.status.hosts[0].address)",
      "ssh://root@\(lab.status.hosts[1].address)", "--identity", key, "--known-hosts", lab.status.known_hosts,
    ])
    #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
    #expect(
      run.stdout.components(separatedBy: "Passphrase for \(key): ").count == 2, "one prompt: \(run.stdout)")
    #expect(!run.stdout.contains(passphrase), "no echo: \(run.stdout)")
    #expect(run.stdout.components(separatedBy: "  ok  ").count == 3, "\(run.stdout)")
  }
  /// A pty driver: answers every prompt it sees, then prints everything the terminal showed.
  static func writeDriver(in dir: TemporaryDirectory) throws -> String {
    let driver = dir.file("drive.py")
    try """
    import os, pty, select, sys
    passphrase, argv = sys.argv[1].encode(), sys.argv[2:]
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "SMCPAIR_KEY_PASSPHRASE")}
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    shown, answered = b"", 0
    while True:
        ready, _, _ = select.select([fd], [], [], 300)
        if not ready:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        shown += data
        while shown.count(b"Passphrase for") > answered:
            answered += 1
            os.write(fd, passphrase + b"\\n")
    _, status = os.waitpid(pid, 0)
    sys.stdout.buffer.write(shown)
    sys.stdout.flush()
    sys.exit(os.waitstatus_to_exitcode(status))
    """.write(toFile: driver, atomically: true, encoding: .utf8)
    return driver
  }

  /// A large download with an encrypted key: its second connection logs in with the
  /// passphrase typed for the first and never asks again.
  @Test func aLargeDownloadAsksOnceForBothConnections() throws {
    let lab = try TestLab(hosts: 1, tag: "q")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let passphrase = "c0rrect-h0rse-\(getpid())"
    let key = try Self.encryptedKey(in: dir, passphrase: passphrase, authorizedOn: lab, hosts: 0..<1)
    let remote = dir.file("remote.bin")
    #expect(try Tools.run(["sh", "-c", "head -c 48000000 /dev/urandom > \(remote)"]).status == 0)
    let expected = try Tools.run(["sha256sum", remote]).stdout.split(separator: " ").first.map(String.init)
    let driver = try Self.writeDriver(in: dir)
    let run = try Tools.run([
      "python3", driver, passphrase, smcpair, "copy", "ssh://root@\(lab.status.hosts[0].address)\(remote)",
      dir.file("local.bin"), "--identity", key, "--known-hosts", lab.status.known_hosts,
    ])
    #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
    #expect(
      run.stdout.components(separatedBy: "Passphrase for \(key): ").count == 2, "one prompt: \(run.stdout)")
    // Both connections logged in with the key (sshd logs each), after the one prompt. Whether
    // the second one also carried data depends on how soon it was ready, so it is not asked.
    let fingerprint = try #require(
      try Tools.run(["ssh-keygen", "-l", "-E", "sha256", "-f", key + ".pub"]).stdout.split(separator: " ")
        .dropFirst()
        .first.map(String.init))
    let log = try String(
      contentsOfFile: "\(lab.stateRoot.path)/\(lab.name)/hosts/h1/sshd.log", encoding: .utf8)
    // sshd -E ends its lines with CRLF (one Character in Swift).
    let logins = log.split(whereSeparator: \.isNewline).filter {
      $0.contains("Accepted publickey") && $0.contains(fingerprint)
    }
    #expect(logins.count == 2, "\(log)")
    #expect(!run.stdout.contains(passphrase), "no echo: \(run.stdout)")
    #expect(SHA256.file(dir.file("local.bin")) == expected)
  }
}
