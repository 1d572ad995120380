import Checksum
import Foundation
import SSHTransport
import TestSupport
import Testing

/// Downloads of 32 MiB or more over two connections to the lab's real sshd: the bytes and
/// the digest are the host's, a cut download resumes from its whole prefix, and a partial
/// file with holes (smcpair killed mid-way) is resumed only from what its note vouches for.
extension SFTPTransfers {
  /// SHA-256 of the first `count` bytes of `path`.
  static func prefixDigest(_ path: String, _ count: Int64) throws -> String? {
    let result = try Tools.run(["sh", "-c", "head -c \(count) \"$0\" | sha256sum", path])
    return result.stdout.split(separator: " ").first.map(String.init)
  }

  static func size(_ path: String) -> Int64? {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
  }

  /// Downloads `remote` to `local` and, once more than `bytes` have arrived, kills every
  /// sshd process serving the lab host's connections: the download must fail.
  static func cutDownload(_ lab: TestLab, _ remote: String, to local: String, after bytes: Int64) throws {
    let session = try SSHSession.connect(lab.target(0), options: lab.options())
    defer { session.close() }
    let listener = try #require(lab.sshdPID(0))
    var cut = false
    let broken = #expect(throws: SSHError.self) {
      _ = try session.download(remote, to: local) { done, _ in
        if done > bytes && !cut {
          cut = true
          _ = try? Tools.run(["pkill", "-KILL", "-P", "\(listener)"])
        }
        return true
      }
    }
    #expect(broken != nil)
  }

  @Test func twoConnectionsPullTheRightBytesAndResume() throws {
    let lab = try TestLab(hosts: 1, tag: "p")
    let dir = try TemporaryDirectory()
    // 120 MB of random data on the host (the lab shares this file system).
    let remote = dir.file("remote.bin")
    #expect(try Tools.run(["sh", "-c", "head -c 120000000 /dev/urandom > \(remote)"]).status == 0)
    let expected = try Tools.run(["sha256sum", remote]).stdout.split(separator: " ").first.map(String.init)

    // Whole: two connections, the host's digest, nothing left beside the file.
    let session = try SSHSession.connect(lab.target(0), options: lab.options())
    let local = dir.file("local.bin")
    // The first connection pauses once (its progress report runs on its own thread), so the
    // second has logged in and taken pieces before the first could fetch them all, however
    // loaded the machine is: the count below does not depend on timing.
    var paused = false
    let whole = try session.download(remote, to: local) { _, _ in
      if !paused {
        paused = true
        usleep(3_000_000)
      }
      return true
    }
    #expect(whole.connections == 2)
    #expect(whole.bytes == 120_000_000)
    #expect(whole.sha256 == expected)
    #expect(SHA256.file(local) == expected)
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["local.bin", "remote.bin"])
    session.close()

    // One connection when asked for one.
    var single = lab.options()
    single.downloadConnections = 1
    let one = try SSHSession.connect(lab.target(0), options: single)
    let alone = try one.download(remote, to: dir.file("alone.bin"), expectedSHA256: expected)
    #expect(alone.connections == 1)
    #expect(SHA256.file(dir.file("alone.bin")) == expected)
    one.close()

    // Cut both connections mid-way (kill every sshd serving them): the partial file keeps a
    // whole prefix of the host's bytes, no note, and running it again resumes from there.
    let resumed = dir.file("resumed.bin")
    try Self.cutDownload(lab, remote, to: resumed, after: 30_000_000)
    let partial = try #require(Self.size(resumed + ".partial"))
    #expect(partial >= 30_000_000 && partial < 120_000_000)
    #expect(!FileManager.default.fileExists(atPath: resumed + ".partial.done"))
    #expect(SHA256.file(resumed + ".partial") == (try Self.prefixDigest(remote, partial)))
    let again = try SSHSession.connect(lab.target(0), options: lab.options())
    let finished = try again.download(remote, to: resumed)
    #expect(finished.resumedFrom == partial)
    #expect(finished.sha256 == expected)
    #expect(SHA256.file(resumed) == expected)
    #expect(!FileManager.default.fileExists(atPath: resumed + ".partial"))

    // As a kill leaves it: 20 MB whole, then a hole up to 70 MB, and the note saying 20 MB.
    let holed = dir.file("holed.bin")
    #expect(
      try Tools.run([
        "sh", "-c", "head -c 20000000 \"$0\" > \"$1\" && truncate -s 70000000 \"$1\"", remote,
        holed + ".partial",
      ]).status == 0)
    try "            20000000\n".write(toFile: holed + ".partial.done", atomically: true, encoding: .utf8)
    let fromNote = try again.download(remote, to: holed)
    #expect(fromNote.resumedFrom == 20_000_000)
    #expect(fromNote.sha256 == expected)
    #expect(SHA256.file(holed) == expected)
    #expect(!FileManager.default.fileExists(atPath: holed + ".partial.done"))
    // A note that cannot be read vouches for nothing.
    let unreadable = dir.file("unreadable.bin")
    #expect(
      try Tools.run(["sh", "-c", "head -c 50000000 \"$0\" > \"$1\"", remote, unreadable + ".partial"]).status
        == 0)
    try "not a number\n".write(toFile: unreadable + ".partial.done", atomically: true, encoding: .utf8)
    let fromNothing = try again.download(remote, to: unreadable, expectedSHA256: expected)
    #expect(fromNothing.resumedFrom == 0)
    #expect(SHA256.file(unreadable) == expected)
    again.close()
  }
}
