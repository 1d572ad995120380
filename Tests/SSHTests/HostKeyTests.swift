import Foundation
import SSHTransport
import TestSupport
import Testing

/// Runs `argv` in a mount namespace of its own whose /etc/hosts is `hosts` (names for lab
/// addresses without touching the machine's /etc/hosts).
func runWithHosts(_ hosts: String, _ argv: [String], environment: [String: String]? = nil) throws
  -> ProcessResult
{
  try Tools.run(
    ["unshare", "-m", "sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\"", hosts] + argv,
    environment: environment)
}

func bytes(_ path: String) -> [UInt8] { FileManager.default.contents(atPath: path).map(Array.init) ?? [] }

/// known_hosts read as OpenSSH reads it, with OpenSSH as the oracle: for each way of writing
/// an entry that OpenSSH takes as the host's, a host presenting a different key is refused by
/// `ssh -o StrictHostKeyChecking=accept-new`, and by smcpair everywhere it checks host keys.
@Suite(.serialized) struct KnownHostsAsOpenSSH {
  struct Variant {
    var name: String
    var bytes: [UInt8]
    /// The name to connect to (an address, or a name from the test's /etc/hosts).
    var host: String
  }

  @Test func aChangedKeyIsRefusedInEveryVariantOpenSSHReads() throws {
    let lab = try TestLab(hosts: 2, tag: "k")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let address = lab.status.hosts[0].address
    // h2's key under h1's name: h1 presents a different key.
    let labLines = try String(contentsOfFile: lab.status.known_hosts, encoding: .utf8).split(separator: "\n")
    let other = labLines[1].split(separator: " ")
    let (type, key) = (String(other[1]), String(other[2]))
    let etcHosts = dir.file("hosts")
    try "127.0.0.1 localhost\n\(address) h1.lab.test\n".write(
      toFile: etcHosts, atomically: true, encoding: .utf8)
    func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }
    var variants = [
      Variant(name: "tab", bytes: utf8("\(address)\t\(type)\t\(key)\n"), host: address),
      Variant(name: "crlf", bytes: utf8("# lab hosts\r\n\(address) \(type) \(key)\r\n"), host: address),
      Variant(
        name: "non-utf8",
        bytes: utf8("# caf") + [0xE9, 0xFF] + utf8(" \n\(address) \(type) \(key) h\u{E9}\n"),
        host: address),
      Variant(name: "upper-case entry", bytes: utf8("H1.LAB.TEST \(type) \(key)\n"), host: "h1.lab.test"),
      Variant(name: "upper-case target", bytes: utf8("h1.lab.test \(type) \(key)\n"), host: "H1.Lab.Test"),
      Variant(
        name: "pattern list", bytes: utf8("*.example,\(address.prefix(3))*,!10.255.255.255 \(type) \(key)\n"),
        host: address),
    ]
    // Hashed by ssh-keygen -H (of the lower-case name); the target typed in upper case.
    let toHash = dir.file("to-hash")
    try "h1.lab.test \(type) \(key)\n".write(toFile: toHash, atomically: true, encoding: .utf8)
    #expect(try Tools.run(["ssh-keygen", "-q", "-H", "-f", toHash]).status == 0)
    variants.append(Variant(name: "hashed, upper-case target", bytes: bytes(toHash), host: "H1.LAB.TEST"))
    #expect(bytes(toHash).starts(with: utf8("|1|")))

    let inventoryText = try String(contentsOfFile: lab.status.inventory, encoding: .utf8)
    for (index, variant) in variants.enumerated() {
      let file = dir.file("known_hosts-\(index)")
      try Data(variant.bytes).write(to: URL(fileURLWithPath: file))
      let context = Comment(rawValue: variant.name)
      // OpenSSH: the entry is the host's, the key changed: refused even with accept-new.
      let ssh = try runWithHosts(
        etcHosts,
        [
          "ssh", "-i", lab.status.identity, "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=\(file)", "-o",
          "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=accept-new", "root@\(variant.host)",
          "true",
        ])
      #expect(ssh.status == 255, context)
      #expect(ssh.stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"), "\(variant.name): \(ssh.stderr)")
      // smcpair hosts check --accept-new.
      let check = try runWithHosts(
        etcHosts,
        [
          smcpair, "hosts", "check", "ssh://root@\(variant.host)", "--known-hosts", file, "--identity",
          lab.status.identity, "--accept-new", "--json",
        ])
      #expect(check.status == 1, context)
      #expect(check.stdout.contains("host-key-mismatch"), "\(variant.name): \(check.stdout) \(check.stderr)")
      // smcpair hosts trust --yes never records over it.
      let trust = try runWithHosts(
        etcHosts, [smcpair, "hosts", "trust", "ssh://root@\(variant.host)", "--known-hosts", file, "--yes"])
      #expect(trust.status == 1, context)
      #expect(trust.stderr.contains("not replacing"), "\(variant.name): \(trust.stdout) \(trust.stderr)")
      // The capture preflight, h1 reached by the variant's name with the inventory's known_hosts
      // pointing at the variant (h2 keeps the lab's file).
      var edited = inventoryText.replacingOccurrences(of: "\"\(address)\"", with: "\"\(variant.host)\"")
      if let first = edited.range(of: lab.status.known_hosts) {
        edited.replaceSubrange(first, with: file)
      }
      let inventory = dir.file("inventory-\(index).yaml")
      try edited.write(toFile: inventory, atomically: true, encoding: .utf8)
      let capture = try runWithHosts(
        etcHosts,
        [
          smcpair, "capture", "-i", inventory, "--pair", "pair1", "--duration", "5s", "--out",
          dir.file("sessions"), "--accept-new", "--agent-binary", try Tools.product("smcpair-agent"),
        ])
      #expect(capture.status == 1, context)
      #expect(
        capture.stdout.contains("HOST KEY MISMATCH"), "\(variant.name): \(capture.stdout) \(capture.stderr)")
      #expect(!capture.stdout.contains("capturing on both sides"), context)
      // Nothing was recorded anywhere.
      #expect(bytes(file) == variant.bytes, context)
    }
  }

  /// Every file OpenSSH reads: the `UserKnownHostsFile` list and `GlobalKnownHostsFile` from
  /// ~/.ssh/config (their defaults when not set); new keys go to the first user file only.
  @Test func everyKnownHostsFileOpenSSHReadsIsRead() throws {
    let lab = try TestLab(hosts: 2, tag: "k")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let home = dir.file("home")
    try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true)
    let address = lab.status.hosts[0].address
    let labLines = try String(contentsOfFile: lab.status.known_hosts, encoding: .utf8).split(separator: "\n")
    let changed = "\(address) \(labLines[1].split(separator: " ").dropFirst().joined(separator: " "))\n"
    let first = dir.file("first")
    let second = dir.file("second")
    let global = dir.file("global")
    let config = home + "/.ssh/config"
    let target = "ssh://root@\(address)"
    let environment = ["HOME": home]
    func smcpairCheck(_ extra: [String] = []) throws -> ProcessResult {
      try Tools.run(
        [smcpair, "hosts", "check", target, "--identity", lab.status.identity, "--accept-new"] + extra,
        environment: environment)
    }
    func ssh() throws -> ProcessResult {
      try Tools.run([
        "ssh", "-F", config, "-i", lab.status.identity, "-o", "BatchMode=yes", "-o",
        "StrictHostKeyChecking=accept-new", "root@\(address)", "true",
      ])
    }
    let cases: [(String, String, [(String, String)])] = [
      (
        "second UserKnownHostsFile",
        "Host *\n  UserKnownHostsFile \(first) \(second)\n  GlobalKnownHostsFile none\n",
        [(second, changed)]
      ),
      (
        "GlobalKnownHostsFile", "Host *\n  UserKnownHostsFile=\(first)\n  GlobalKnownHostsFile \(global)\n",
        [(global, changed)]
      ),
      (
        "default ~/.ssh/known_hosts2", "Host *\n  GlobalKnownHostsFile /dev/null\n",
        [(home + "/.ssh/known_hosts2", changed)]
      ),
    ]
    for (name, configText, files) in cases {
      try configText.write(toFile: config, atomically: true, encoding: .utf8)
      for (path, text) in files { try text.write(toFile: path, atomically: true, encoding: .utf8) }
      // OpenSSH reads ~ from the password database, not $HOME: give it the same path.
      if name.hasPrefix("default") {
        try
          "Host *\n  UserKnownHostsFile \(home)/.ssh/known_hosts \(home)/.ssh/known_hosts2\n  GlobalKnownHostsFile /dev/null\n"
          .write(toFile: config + ".openssh", atomically: true, encoding: .utf8)
        let oracle = try Tools.run([
          "ssh", "-F", config + ".openssh", "-i", lab.status.identity, "-o", "BatchMode=yes", "-o",
          "StrictHostKeyChecking=accept-new", "root@\(address)", "true",
        ])
        #expect(oracle.status == 255, "\(name): \(oracle.stderr)")
        #expect(oracle.stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"), "\(name): \(oracle.stderr)")
      } else {
        let oracle = try ssh()
        #expect(oracle.status == 255, "\(name): \(oracle.stderr)")
        #expect(oracle.stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"), "\(name): \(oracle.stderr)")
      }
      let check = try smcpairCheck()
      #expect(check.status == 1, "\(name)")
      #expect(check.stdout.contains("HOST KEY MISMATCH"), "\(name): \(check.stdout) \(check.stderr)")
      for (path, text) in files {
        #expect(bytes(path) == Array(text.utf8), "\(name): \(path) unchanged")
        try FileManager.default.removeItem(atPath: path)
      }
    }
    // Unknown everywhere: accept-new records in the first user file only.
    try "Host *\n  UserKnownHostsFile \(first) \(second)\n  GlobalKnownHostsFile \(global)\n".write(
      toFile: config, atomically: true, encoding: .utf8)
    let recorded = try smcpairCheck()
    #expect(recorded.status == 0, "\(recorded.stdout) \(recorded.stderr)")
    #expect(recorded.stdout.contains("(recorded)"))
    #expect(FileManager.default.fileExists(atPath: first))
    #expect(!FileManager.default.fileExists(atPath: second))
    #expect(!FileManager.default.fileExists(atPath: global))
    let strict = try ssh()
    #expect(strict.status == 0, "OpenSSH accepts what was recorded: \(strict.stderr)")
  }

  /// Where OpenSSH would skip a line or a file and go on to "unknown host", smcpair refuses
  /// with the file and line: a line naming the host whose key cannot be read, and a
  /// known_hosts path that exists but cannot be read.
  @Test func unreadableEntriesAndFilesAreRefusals() throws {
    let lab = try TestLab(hosts: 1, tag: "k")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let address = lab.status.hosts[0].address
    let target = "ssh://root@\(address)"
    let broken = dir.file("broken")
    try "# comment\n\(address) ssh-ed25519 not*base64\n".write(
      toFile: broken, atomically: true, encoding: .utf8)
    let folder = dir.file("folder")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let mislabeled = dir.file("mislabeled")
    let labKey = try String(contentsOfFile: lab.status.known_hosts, encoding: .utf8).split(separator: "\n")[0]
      .split(separator: " ")[2]
    try "\(address) ecdsa-sha2-nistp256 \(labKey)\n".write(
      toFile: mislabeled, atomically: true, encoding: .utf8)
    for (file, says) in [
      (broken, "\(broken):2 names \(address) but cannot be read"),
      (folder, "cannot read known_hosts file \(folder)"),
      (mislabeled, "\(mislabeled):1 names \(address) but cannot be read"),
    ] {
      let before = bytes(file)
      let check = try Tools.run([
        smcpair, "hosts", "check", target, "--known-hosts", file, "--identity", lab.status.identity,
        "--accept-new",
      ])
      #expect(check.status == 1)
      #expect(check.stdout.contains(says), "\(check.stdout)")
      let trust = try Tools.run([smcpair, "hosts", "trust", target, "--known-hosts", file, "--yes"])
      #expect(trust.status == 1)
      #expect(trust.stderr.contains(says), "\(trust.stderr)")
      #expect(bytes(file) == before)
    }
  }

  /// The parser on its own: markers, patterns, hashed names, whitespace, bytes.
  @Test func parserReadsWhatOpenSSHReads() throws {
    let blob: [UInt8] =
      [0, 0, 0, 11] + Array("ssh-ed25519".utf8) + [0, 0, 0, 32] + Array(repeating: 7, count: 32)
    let key = Data(blob).base64EncodedString()
    let text =
      Array(
        "# \u{E9}\n@cert-authority *.example ssh-ed25519 \(key)\n@revoked host.example ssh-ed25519 \(key)\n"
          .utf8)
      + [0xFF, 0x0A]
      + Array(
        "host.example,!bad.example ssh-ed25519 \(key)\r\n\t[host.example]:2222 ssh-ed25519 \(key)\n".utf8)
    let found = KnownHosts.parse(text, file: "f", name: "host.example")
    #expect(found.problems.isEmpty)
    #expect(found.entries.map(\.line) == [2, 3, 5])
    #expect(found.entries.map(\.marker) == [.certAuthority, .revoked, .none])
    #expect(KnownHosts.parse(text, file: "f", name: "bad.example").entries.map(\.line) == [2])
    #expect(KnownHosts.parse(text, file: "f", name: "[host.example]:2222").entries.map(\.line) == [6])
    #expect(KnownHosts.lookupName(host: "Host.EXAMPLE", port: 2222) == "[host.example]:2222")
    let bad = KnownHosts.parse(
      Array("host.example ssh-ed25519\nother ssh-ed25519 !\n".utf8), file: "f", name: "host.example")
    #expect(bad.problems.map(\.line) == [1])
    #expect(SSHTarget.label(user: "u", host: "fd00::1", port: 22) == "u@[fd00::1]:22")
  }
}
