import Checksum
import Foundation
import SSHTransport
import TestSupport
import Testing

/// Shared helpers for tests against the lab's real OpenSSH sshd.
extension TestLab {
  func target(_ index: Int) -> SSHTarget { SSHTarget(user: "root", host: status.hosts[index].address) }

  func options(knownHosts: String? = nil) -> SSHOptions {
    var options = SSHOptions()
    options.identityFiles = [status.identity]
    options.knownHostsFile = knownHosts ?? status.known_hosts
    options.useAgent = false
    options.config = SSHConfig(text: "", path: "(none)")
    return options
  }

  func authorizedKeys(_ index: Int) -> String {
    "\(stateRoot.path)/\(name)/hosts/h\(index + 1)/authorized_keys"
  }

  /// PID of host `index`'s sshd listener.
  func sshdPID(_ index: Int) -> Int32? {
    let text = try? String(
      contentsOfFile: "\(stateRoot.path)/\(name)/hosts/h\(index + 1)/sshd.pid", encoding: .utf8)
    return text.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
  }
}

func keygen(_ path: String, type: String, passphrase: String = "") throws {
  let result = try Tools.run(
    ["ssh-keygen", "-q", "-t", type, "-N", passphrase, "-f", path] + (type == "rsa" ? ["-b", "2048"] : []))
  #expect(result.status == 0, "\(result.stderr)")
}

@Suite(.serialized) struct SSHSessions {
  @Test func rightKeyRunsCommandsWithExitCodesAndSignals() throws {
    let lab = try TestLab(hosts: 1, tag: "x")
    let session = try SSHSession.connect(lab.target(0), options: lab.options())
    defer { session.close() }
    #expect(session.authMethod == "identity file \(lab.status.identity)")
    // The fingerprint is the one ssh-keygen prints for the host's key.
    let hostKey = "\(lab.stateRoot.path)/\(lab.name)/hosts/h1/ssh_host_ed25519_key.pub"
    let keygen = try Tools.run(["ssh-keygen", "-l", "-E", "sha256", "-f", hostKey]).stdout
    #expect(keygen.contains(session.hostKey.fingerprint))
    let echo = try session.run("echo hello; echo oops >&2")
    #expect(echo.stdoutText == "hello\n")
    #expect(echo.stderrText == "oops\n")
    #expect(echo.exitStatus == 0)
    #expect(try session.run("exit 3").exitStatus == 3)
    let killed = try session.run("kill -KILL $$")
    #expect(killed.exitStatus == nil)
    #expect(killed.signal == "KILL")
    let input = try session.run("wc -c", stdin: Array(repeating: 0x41, count: 300_000))
    #expect(input.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "300000")
  }

  /// A remote command (a hostile host's "agent") that never ends its line: readLine gives
  /// up after 1 MiB instead of buffering without bound.
  @Test func aLineWithoutEndIsRefusedAfterOneMiB() throws {
    let lab = try TestLab(hosts: 1, tag: "y")
    let session = try SSHSession.connect(lab.target(0), options: lab.options())
    defer { session.close() }
    let stream = try session.stream("echo first; head -c 3000000 /dev/zero | tr '\\0' a; sleep 1")
    #expect(try stream.readLine(timeout: 10) == "first")
    let error = #expect(throws: SSHError.self) { try stream.readLine(timeout: 10) }
    #expect(error?.message.contains("longer than 1 MiB") == true, "\(String(describing: error))")
  }

  /// A command with endless output is cut off at the cap, one that prints a line now and
  /// then at its overall deadline; both errors name the host and the purpose, and the
  /// session stays usable.
  @Test func endlessOrSlowOutputIsCutOffAndTheSessionStaysUsable() throws {
    let lab = try TestLab(hosts: 1, tag: "x")
    let session = try SSHSession.connect(lab.target(0), options: lab.options())
    defer { session.close() }
    let endless = #expect(throws: SSHError.self) { try session.run("yes", purpose: "saying yes") }
    #expect(endless?.code == .outputLimit)
    #expect(endless?.message.contains("saying yes: the host sent more than 64 KiB on stdout") == true)
    #expect(endless?.description.hasPrefix(session.label) == true)
    let noisy = #expect(throws: SSHError.self) {
      try session.run("yes >&2", purpose: "complaining", limits: CommandLimits(stdout: nil, stderr: 4096))
    }
    #expect(noisy?.message.contains("complaining: the host sent more than 4 KiB on stderr") == true)
    let slow = #expect(throws: SSHError.self) {
      try session.run(
        "while :; do echo x; sleep 1; done", purpose: "ticking", limits: CommandLimits(seconds: 3))
    }
    #expect(slow?.code == .timeout)
    #expect(slow?.message.contains("ticking: not finished after 3 s") == true, "\(String(describing: slow))")
    #expect(try session.run("echo still here").stdoutText == "still here\n")
  }

  @Test func eightMiBOfStdoutAndStderrDoNotStall() throws {
    let lab = try TestLab(hosts: 1, tag: "x")
    let session = try SSHSession.connect(lab.target(0), options: lab.options())
    defer { session.close() }
    var out = 0
    var err = 0
    var outOK = true
    // Streamed output (the caller bounds it): no caps.
    let (status, _) = try session.run(
      "head -c 8388608 /dev/zero | tr '\\0' a >&2; head -c 8388608 /dev/zero | tr '\\0' b; head -c 1048576 /dev/zero | tr '\\0' a >&2",
      limits: CommandLimits(stdout: nil, stderr: nil, seconds: nil),
      onStdout: { chunk in
        out += chunk.count
        outOK = outOK && chunk.allSatisfy { $0 == 0x62 }
      }, onStderr: { err += $0.count })
    #expect(status == 0)
    #expect(out == 8_388_608)
    #expect(err == 9_437_184)
    #expect(outOK)
  }

  @Test func hostKeysAreCheckedStrictly() throws {
    let lab = try TestLab(hosts: 2, tag: "x")
    let dir = try TemporaryDirectory()
    // Mismatch: h1's address with h2's key.
    let lines = try String(contentsOfFile: lab.status.known_hosts, encoding: .utf8).split(separator: "\n")
    let wrong = dir.file("wrong")
    try
      "# a comment\n\(lab.status.hosts[0].address) \(lines[1].split(separator: " ").dropFirst().joined(separator: " "))\n"
      .write(toFile: wrong, atomically: true, encoding: .utf8)
    let mismatch = #expect(throws: SSHError.self) {
      try SSHSession.connect(lab.target(0), options: lab.options(knownHosts: wrong))
    }
    #expect(mismatch?.code == .hostKeyMismatch)
    #expect(mismatch?.message.contains("\(wrong):2") == true)
    #expect(mismatch?.message.components(separatedBy: "SHA256:").count == 3, "both fingerprints")
    // Unknown: refused, then accepted with accept-new and remembered.
    let fresh = dir.file("fresh")
    let unknown = #expect(throws: SSHError.self) {
      try SSHSession.connect(lab.target(0), options: lab.options(knownHosts: fresh))
    }
    #expect(unknown?.code == .hostKeyUnknown)
    #expect(unknown?.message.contains("--accept-new") == true)
    var accepting = lab.options(knownHosts: fresh)
    accepting.acceptNew = true
    let first = try SSHSession.connect(lab.target(0), options: accepting)
    #expect(first.hostKey.recorded)
    first.close()
    let again = try SSHSession.connect(lab.target(0), options: lab.options(knownHosts: fresh))
    #expect(!again.hostKey.recorded)
    again.close()
    // OpenSSH agrees with what was recorded.
    let ssh = try Tools.run([
      "ssh", "-i", lab.status.identity, "-o", "UserKnownHostsFile=\(fresh)", "-o",
      "StrictHostKeyChecking=yes",
      "-o", "BatchMode=yes", "-o", "GlobalKnownHostsFile=/dev/null", "root@\(lab.status.hosts[0].address)",
      "true",
    ])
    #expect(ssh.status == 0, "\(ssh.stderr)")
    // Hashed entries (ssh-keygen -H) work too.
    let hashed = dir.file("hashed")
    try FileManager.default.copyItem(atPath: lab.status.known_hosts, toPath: hashed)
    #expect(try Tools.run(["ssh-keygen", "-q", "-H", "-f", hashed]).status == 0)
    #expect(try String(contentsOfFile: hashed, encoding: .utf8).hasPrefix("|1|"))
    let viaHashed = try SSHSession.connect(lab.target(1), options: lab.options(knownHosts: hashed))
    viaHashed.close()
    // A revoked key is refused.
    let revoked = dir.file("revoked")
    try "@revoked \(lines[0])\n\(lines[0])\n".write(toFile: revoked, atomically: true, encoding: .utf8)
    let refused = #expect(throws: SSHError.self) {
      try SSHSession.connect(lab.target(0), options: lab.options(knownHosts: revoked))
    }
    #expect(refused?.code == .hostKeyRevoked)
  }

  @Test func agentEncryptedAndRSAKeys() throws {
    let lab = try TestLab(hosts: 1, tag: "x")
    let dir = try TemporaryDirectory()
    // Encrypted ed25519 key, authorized on the host.
    let encrypted = dir.file("enc")
    try keygen(encrypted, type: "ed25519", passphrase: "correct horse")
    let rsa = dir.file("rsa")
    try keygen(rsa, type: "rsa")
    let authorized = try String(contentsOfFile: lab.authorizedKeys(0), encoding: .utf8)
    try
      (authorized + String(contentsOfFile: encrypted + ".pub", encoding: .utf8)
      + String(contentsOfFile: rsa + ".pub", encoding: .utf8))
      .write(toFile: lab.authorizedKeys(0), atomically: true, encoding: .utf8)
    var options = lab.options()
    options.identityFiles = [encrypted]
    options.passphrase = "correct horse"
    let withPassphrase = try SSHSession.connect(lab.target(0), options: options)
    #expect(withPassphrase.authMethod == "identity file \(encrypted)")
    withPassphrase.close()
    options.passphrase = "wrong"
    let wrong = #expect(throws: SSHError.self) { try SSHSession.connect(lab.target(0), options: options) }
    #expect(wrong?.code == .authentication)
    #expect(wrong?.message.contains("could not be read") == true)
    // RSA: OpenSSH refuses libssh2 1.10's ssh-rsa signatures; the message says why.
    options.identityFiles = [rsa]
    options.passphrase = nil
    let rsaError = #expect(throws: SSHError.self) { try SSHSession.connect(lab.target(0), options: options) }
    #expect(rsaError?.message.contains("rsa") == true || rsaError?.message.contains("RSA") == true)
    #expect(rsaError?.message.contains("ed25519 or ECDSA key") == true)
    // ssh-agent started by the test, holding the lab key; no identity file given.
    let socket = dir.file("agent.sock")
    let agent = try BackgroundProcess(
      ["/usr/bin/ssh-agent", "-D", "-a", socket], stdout: dir.file("agent.out"), stderr: dir.file("agent.err")
    )
    defer { agent.stop() }
    for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { usleep(10_000) }
    let add = try Tools.run(["ssh-add", lab.status.identity], environment: ["SSH_AUTH_SOCK": socket])
    #expect(add.status == 0, "\(add.stderr)")
    setenv("SSH_AUTH_SOCK", socket, 1)
    defer { unsetenv("SSH_AUTH_SOCK") }
    var viaAgent = lab.options()
    viaAgent.identityFiles = []
    viaAgent.useAgent = true
    let session = try SSHSession.connect(lab.target(0), options: viaAgent)
    #expect(session.authMethod.hasPrefix("ssh-agent key"))
    session.close()
  }

  @Test func proxyJumpGoesThroughTheJumpHost() throws {
    let lab = try TestLab(hosts: 3, tag: "x")
    var options = lab.options()
    options.proxyJump = [lab.target(0)]
    let session = try SSHSession.connect(lab.target(2), options: options)
    defer { session.close() }
    let origin = try session.run("echo $SSH_CONNECTION").stdoutText.split(separator: " ").first.map(
      String.init)
    #expect(origin == lab.status.hosts[0].address, "h3 sees the connection coming from h1")
    // Two hops: h1 then h2, then h3.
    options.proxyJump = [lab.target(0), lab.target(1)]
    let twoHops = try SSHSession.connect(lab.target(2), options: options)
    let origin2 = try twoHops.run("echo $SSH_CONNECTION").stdoutText.split(separator: " ").first.map(
      String.init)
    #expect(origin2 == lab.status.hosts[1].address)
    #expect(try twoHops.run("head -c 3000000 /dev/zero | wc -c").stdoutText.contains("3000000"))
    twoHops.close()
  }

  @Test func sshConfigSubset() throws {
    let lab = try TestLab(hosts: 2, tag: "x")
    let config = SSHConfig(
      text: """
        Host jumpbox
          HostName \(lab.status.hosts[0].address)
          User root
        Host target-*
          HostName \(lab.status.hosts[1].address)
          ProxyJump jumpbox
          User root
          IdentityFile \(lab.status.identity)
          ConnectTimeout 5
        Host *
          User nobody
          UserKnownHostsFile \(lab.status.known_hosts)
        """, path: "test_config")
    var options = SSHOptions()
    options.useAgent = false
    options.config = config
    options.identityFiles = [lab.status.identity]
    options.knownHostsFile = nil
    let session = try SSHSession.connect(SSHTarget(host: "target-1"), options: options)
    #expect(session.user == "root")
    #expect(try session.run("echo $SSH_CONNECTION").stdoutText.hasPrefix(lab.status.hosts[0].address))
    session.close()
    let resolved = try config.resolve("target-9")
    #expect(resolved.connectTimeout == 5)
    #expect(resolved.proxyJump == [SSHTarget(host: "jumpbox")])
    let refusing = SSHConfig(text: "Host *\n  StrictHostKeyChecking no\n", path: "bad_config")
    let error = #expect(throws: SSHError.self) { try refusing.resolve("x") }
    #expect(error?.message.contains("bad_config:2") == true)
    #expect(error?.message.contains("accept-new") == true)
  }

  @Test func knownHostsNamesPortsAndPatterns() {
    #expect(KnownHosts.name(host: "a", port: 22) == "a")
    #expect(KnownHosts.name(host: "a", port: 2222) == "[a]:2222")
    #expect(KnownHosts.patternMatches("*.example.com,!bad.example.com", name: "x.example.com"))
    #expect(!KnownHosts.patternMatches("*.example.com,!bad.example.com", name: "bad.example.com"))
    #expect(KnownHosts.patternMatches("[10.0.0.?]:2222", name: "[10.0.0.5]:2222"))
    #expect(!KnownHosts.patternMatches("10.0.0.5", name: "[10.0.0.5]:2222"))
  }
}

@Suite(.serialized) struct SFTPTransfers {
  @Test func downloadUploadAndResumeAfterACut() throws {
    let lab = try TestLab(hosts: 1, tag: "y")
    let dir = try TemporaryDirectory()
    // 200 MB of random data on the host (the lab shares this file system).
    let remote = dir.file("remote.bin")
    #expect(try Tools.run(["sh", "-c", "head -c 200000000 /dev/urandom > \(remote)"]).status == 0)
    let expected = try Tools.run(["sha256sum", remote]).stdout.split(separator: " ").first.map(String.init)
    let session = try SSHSession.connect(lab.target(0), options: lab.options())
    let local = dir.file("local.bin")
    let result = try session.download(remote, to: local)
    #expect(result.bytes == 200_000_000)
    #expect(result.sha256 == expected)
    #expect(SHA256.file(local) == expected)
    print(
      String(
        format: "SFTP download: 200 MB in %.2f s (%.0f MiB/s)", result.seconds,
        200 / 1.048576 / result.seconds))
    // Upload: temporary name, renamed when complete, mode applied.
    let uploaded = dir.file("up/uploaded.bin")
    try FileManager.default.createDirectory(atPath: dir.file("up"), withIntermediateDirectories: true)
    let up = try session.upload(local, to: uploaded, mode: 0o640)
    #expect(up.sha256 == expected)
    #expect(SHA256.file(uploaded) == expected)
    let attributes = try FileManager.default.attributesOfItem(atPath: uploaded)
    #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o640)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("up")) == ["uploaded.bin"])
    session.close()

    // Cut the connection mid-transfer (kill the sshd process serving it), then resume.
    let resumed = dir.file("resumed.bin")
    try Self.cutDownload(lab, remote, to: resumed, after: 60_000_000)
    let partial =
      (try FileManager.default.attributesOfItem(atPath: resumed + ".partial")[.size] as? NSNumber)?.int64Value
      ?? 0
    #expect(partial >= 60_000_000 && partial < 200_000_000)
    let again = try SSHSession.connect(lab.target(0), options: lab.options())
    let finished = try again.download(remote, to: resumed)
    #expect(finished.resumedFrom == partial)
    #expect(finished.sha256 == expected)
    #expect(!FileManager.default.fileExists(atPath: resumed + ".partial"))
    // A checksum that does not match removes the copy and says so.
    let bad = #expect(throws: SSHError.self) {
      _ = try again.download(
        remote, to: dir.file("bad.bin"), expectedSHA256: String(repeating: "0", count: 64))
    }
    #expect(bad?.code == .checksum)
    #expect(!FileManager.default.fileExists(atPath: dir.file("bad.bin")))
    again.close()
  }
}

@Suite(.serialized) struct ManyHosts {
  @Test func thirtyTwoHostsInParallel() throws {
    let lab = try TestLab(hosts: 32, tag: "z")
    let options = lab.options()
    let targets = (0..<32).map { lab.target($0) }
    let started = Date()
    let results = ParallelHosts.map(targets) { target -> String in
      do {
        let session = try SSHSession.connect(target, options: options)
        defer { session.close() }
        return try session.run("hostname -I").stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
      } catch {
        return "error: \(error)"
      }
    }
    print(
      String(
        format: "32 hosts connected, authenticated and ran a command in %.2f s",
        Date().timeIntervalSince(started)))
    // `hostname -I` lists the management address (eth0) and the data address (data0).
    let seen: [Set<String>] = results.map { Set($0.split(separator: " ").map(String.init)) }
    let expected: [Set<String>] = lab.status.hosts.map { host in
      var addresses: Set<String> = [host.address]
      if let data = host.data_address { addresses.insert(data) }
      return addresses
    }
    #expect(seen == expected)
  }
}
