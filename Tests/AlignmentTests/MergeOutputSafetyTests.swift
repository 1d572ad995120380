import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// What `smcpair merge` leaves in its output folder when it is stopped, its permissions,
/// and how it refuses inputs and outputs it cannot use.
@Suite(.serialized) struct MergeOutputSafety {
  static let finalNames = ["alignment.json", "merged.pcapng", "timeline.jsonl", "timeline.html", "report.md"]

  static func mode(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_mode & 0o7777) : -1
  }

  static func entries(_ folder: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
  }

  static func packets(_ path: String) throws -> Int? {
    let result = try Tools.run(["capinfos", "-c", "-M", path])
    guard result.status == 0 else { return nil }
    return result.stdout.split(separator: "\n").first { $0.contains("Number of packets") }
      .flatMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) }
  }

  /// Every output under a final name is complete: merged.pcapng holds every packet of both
  /// sides, and any output at all means alignment.json (written last) is there and parses.
  static func expectNoPartialOutput(
    _ out: String, total: Int, _ context: String, sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let present = finalNames.filter { FileManager.default.fileExists(atPath: "\(out)/\($0)") }
    guard !present.isEmpty else { return }
    #expect(present.contains("alignment.json"), "\(context): \(present)", sourceLocation: sourceLocation)
    if present.contains("alignment.json") {
      #expect(
        (try? json("\(out)/alignment.json"))?["verdict"] != nil, "\(context)", sourceLocation: sourceLocation)
    }
    if present.contains("merged.pcapng") {
      #expect(
        try packets("\(out)/merged.pcapng") == total, "\(context): partial merged.pcapng",
        sourceLocation: sourceLocation)
    }
  }

  /// SIGTERM and SIGKILL while the merge writes: no output under a final name is partial,
  /// SIGTERM leaves no temporary file, and the next merge into the folder removes what
  /// SIGKILL left and completes. The signal is sent once merged.pcapng is being written
  /// (waited for by polling the folder, not by time).
  @Test(arguments: ["pcapng", "pcapng,jsonl,html,report"])
  func aMergeStoppedMidwayLeavesNoPartialOutput(formats: String) throws {
    let dir = try TemporaryDirectory()
    let smcpair = try Tools.product("smcpair")
    let (client, server) = try WindowedMerge.sides(dir, connections: 1500, messages: 40, size: 200)
    let total = try #require(try Self.packets(client)) + (try #require(try Self.packets(server)))
    for signal in [SIGTERM, SIGKILL] {
      let out = dir.file("out-\(signal)")
      let process = try BackgroundProcess(
        [smcpair, "merge", client, server, "--out", out, "--formats", formats], stdout: dir.file("merge.out"),
        stderr: dir.file("merge.err"))
      // Mid-way: merged.pcapng (under whatever name it is written) has bytes in it.
      while process.exitStatus == nil
        && !Self.entries(out).contains(where: { name in
          name.contains("merged.pcapng")
            && ((try? FileManager.default.attributesOfItem(atPath: "\(out)/\(name)")[.size] as? Int) ?? 0) > 0
        })
      {
        usleep(2000)
      }
      try #require(process.exitStatus == nil, "the merge ended before it could be stopped; make it larger")
      kill(process.pid, signal)
      _ = process.wait(seconds: 60)
      try Self.expectNoPartialOutput(out, total: total, "after signal \(signal)")
      if signal == SIGTERM {
        #expect(
          !Self.entries(out).contains { $0.hasPrefix(".smcpair-") }, "SIGTERM left \(Self.entries(out))")
      }
      let rerun = try Tools.run([smcpair, "merge", client, server, "--out", out, "--formats", formats])
      #expect(rerun.status == 0, "\(rerun.stderr)")
      #expect(
        !Self.entries(out).contains { $0.hasPrefix(".") }, "temporary files left: \(Self.entries(out))")
      try Self.expectNoPartialOutput(out, total: total, "after the rerun")
      #expect(FileManager.default.fileExists(atPath: "\(out)/alignment.json"))
    }
  }

  /// Everything derived from captures is owner-only: the folder merge creates is 0700 and
  /// every file 0600, whatever the umask (here 000).
  @Test func outputsAreOwnerOnlyWhateverTheUmask() throws {
    let dir = try TemporaryDirectory()
    let smcpair = try Tools.product("smcpair")
    let (client, server) = try WindowedMerge.sides(dir, connections: 4, messages: 5)
    for formats in ["pcapng", "pcapng,jsonl,html,report"] {
      let out = dir.file("made/by/merge-\(formats.count)")
      let merge = try Tools.run([
        "sh", "-c", "umask 000; exec \"$@\"", "sh", smcpair, "merge", client, server, "--out", out,
        "--formats",
        formats,
      ])
      #expect(merge.status == 0, "\(merge.stderr)")
      #expect(Self.mode(out) == 0o700, "\(String(Self.mode(out), radix: 8))")
      let files = Self.entries(out)
      #expect(files.contains("alignment.json") && files.contains("merged.pcapng"), "\(files)")
      for name in files {
        #expect(
          Self.mode("\(out)/\(name)") == 0o600, "\(name): \(String(Self.mode("\(out)/\(name)"), radix: 8))")
      }
    }
  }

  /// `--out` naming an existing file, and inputs that cannot be opened or are not captures:
  /// one clear line each and the sysexits status; a FIFO is refused, not waited on
  /// (`timeout` only turns a hang into a failure).
  @Test func unusableInputsAndOutputsAreToldClearly() throws {
    let dir = try TemporaryDirectory()
    let smcpair = try Tools.product("smcpair")
    let (client, server) = try WindowedMerge.sides(dir, connections: 2, messages: 3)
    let file = dir.file("existing.txt")
    try Data("not a folder".utf8).write(to: URL(fileURLWithPath: file))
    for formats in ["pcapng", "pcapng,report"] {
      let outIsFile = try Tools.run([smcpair, "merge", client, server, "--out", file, "--formats", formats])
      #expect(outIsFile.status == 73, "\(outIsFile.stderr)")
      #expect(
        outIsFile.stderr.contains("--out \(file) exists and is not a folder"), "\(outIsFile.stderr)")
      #expect(!outIsFile.stderr.contains("NSCocoaErrorDomain") && !outIsFile.stderr.contains("Usage:"))
    }
    let fifo = dir.file("client.fifo")
    try #require(mkfifo(fifo, 0o600) == 0)
    for formats in ["pcapng", "pcapng,report"] {
      let fromFIFO = try Tools.run([
        "timeout", "60", smcpair, "merge", fifo, server, "--out", dir.file("out"), "--formats", formats,
      ])
      #expect(fromFIFO.status == 66, "\(fromFIFO.stderr)")
      #expect(fromFIFO.stderr.contains("is a pipe or FIFO"), "\(fromFIFO.stderr)")
    }
    let text = dir.file("notes.txt")
    try Data("just text".utf8).write(to: URL(fileURLWithPath: text))
    let notCapture = try Tools.run([smcpair, "merge", client, text, "--out", dir.file("out")])
    #expect(notCapture.status == 65, "\(notCapture.stderr)")
    let help = try Tools.run([smcpair, "merge", "--help"])
    let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    #expect(words.contains("66 a capture cannot be opened") && words.contains("73 an output"), "\(words)")
  }
}
