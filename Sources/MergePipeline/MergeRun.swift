import Alignment
import CaptureFiles
import Foundation
import JSON
import Rendering
import SMCWire
import Support

/// The whole of `smcpair merge`: align two captures and write the chosen outputs. Used by
/// `smcpair merge` and by `smcpair capture` after it pulled both sides.
public enum MergeRun {
  public struct Result: Sendable {
    public var alignment: Alignment
    public var findings: [Finding]
    /// report.md's sections.
    public var reportSections: MergeReport
    /// report.md's text (also printed by `smcpair merge`).
    public var report: String { reportSections.text }

    /// Whether the clocks were aligned at all: false when the captures share no packet or
    /// no shared packet's direction can be told (the outputs are written, without bounds).
    public var aligned: Bool { alignment.aligned }
  }

  /// Inputs that cannot be merged as given: said before anything is written.
  public struct Refusal: Error, CustomStringConvertible {
    public var description: String
  }

  /// Refuses the same capture given twice (one path, or the same bytes).
  static func checkDistinct(client: String, server: String) throws(Refusal) {
    let paths = PerSide(client: client, server: server).map { path in
      path.withCString { p -> String in
        guard let resolved = realpath(p, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
      }
    }
    if paths.client == paths.server {
      throw Refusal(
        description:
          "\(client) and \(server) are the same file (one capture given twice): give the client's capture and the server's"
      )
    }
    guard let a = try? MappedFile(path: client), let b = try? MappedFile(path: server),
      a.bytes.count == b.bytes.count, let first = a.bytes.baseAddress, let second = b.bytes.baseAddress,
      memcmp(first, second, a.bytes.count) == 0
    else { return }
    throw Refusal(
      description:
        "\(client) and \(server) have the same content: one capture twice; give the client's capture and the server's"
    )
  }

  /// After pairing: every shared packet at the same time on both sides is one capture
  /// twice (two hosts never stamp every packet alike); inputs that look swapped are refused
  /// unless `allowSwapped` (then the report says so).
  static func checkPairing(_ a: inout Alignment, client: String, server: String, allowSwapped: Bool)
    throws(Refusal)
  {
    let shared = a.pairCount + a.undirectedPairs
    if shared > 0 && a.sameTimePairs == shared {
      throw Refusal(
        description:
          "every packet \(client) and \(server) share has the same timestamp in both: these are one capture twice (perhaps in two formats); give the client's capture and the server's"
      )
    }
    guard let swapped = a.hosts.swapped else { return }
    if allowSwapped {
      a.warnings.append(
        "\(swapped): the client and server roles look reversed; the merge keeps the order given")
    } else {
      throw Refusal(
        description:
          "\(client) looks like the server's capture and \(server) like the client's: \(swapped). Give them the other way round: smcpair merge \(server) \(client) ..."
      )
    }
  }

  /// Aligns `client` and `server` and writes alignment.json plus `formats` into `out`.
  /// `captureGaps` are what only a capture knows (a side's capture ending early): report.md
  /// says them in its own section.
  ///
  /// The captures are paired by a windowed walk (memory follows `window`, not the files:
  /// `WindowedAligner`) and every output is written from its note files, unless the walk
  /// cannot be trusted to find every pair or `inMemory` asks; then they are paired in memory.
  public static func run(
    client: String, server: String, out: String, clientName: String = "client", serverName: String = "server",
    formats: MergeFormats = .all, reference: Side = .client, clientAddresses: Set<IPAddress> = [],
    probe: ClockProbe? = nil, window: Int64 = WindowedAligner.defaultWindowNanoseconds,
    allowSwapped: Bool = false, captureGaps: [String] = [], inMemory: Bool = false
  ) throws -> Result {
    try checkDistinct(client: client, server: server)
    // Inputs that cannot be opened or are not captures are told before the folder is touched.
    for path in [client, server] { _ = try CaptureFileReader(path: path) }
    try prepareOutputFolder(out)
    var fallback: String?
    // The findings are gathered in the pairing walk; only the outputs that show them need them.
    let wantsFindings = !formats.isDisjoint(with: [.jsonl, .html, .report])
    let observers =
      wantsFindings ? PerSide(client: CaptureFindingsObserver(), server: CaptureFindingsObserver()) : nil
    let outcome =
      inMemory
      ? .needsMemory(reason: "asked for")
      : try WindowedAligner.align(
        client: client, server: server, clientAddresses: clientAddresses, window: window, logFolder: out,
        keepPairs: formats != .pcapng,
        observers: observers.map { PerSide(client: $0.client, server: $0.server) } ?? PerSide(repeating: nil))
    switch outcome {
    case .aligned(var alignment, let logs):
      defer { logs.remove() }
      try checkPairing(&alignment, client: client, server: server, allowSwapped: allowSwapped)
      return try writeWindowed(
        &alignment, logs: logs, observers: observers, client: client, server: server, out: out,
        names: PerSide(client: clientName, server: serverName), formats: formats, reference: reference,
        captureGaps: captureGaps)
    case .needsMemory(let reason):
      fallback = reason
    }
    let observed = wantsFindings ? CaptureFindingsObserver() : nil
    var alignment = try Aligner.align(
      client: client, server: server, clientAddresses: clientAddresses, probe: probe, observer: observed)
    try checkPairing(&alignment, client: client, server: server, allowSwapped: allowSwapped)
    // Worth saying only when something was paired (and so held in memory).
    if let fallback, !inMemory, alignment.pairCount > 0 {
      alignment.warnings.append(
        "paired in memory (memory grows with the captures), not within the pairing window: \(fallback)")
    }
    if formats.contains(.pcapng) {
      try MergeOutputs.writeMergedPcapng(
        alignment, client: client, server: server, clientName: clientName, serverName: serverName,
        to: out + "/merged.pcapng", reference: reference)
    }
    let findings = observed.map { FindingsBuilder.build(alignment, observed: $0) } ?? []
    if !formats.isDisjoint(with: [.jsonl, .html]) {
      try TimelinePass(
        alignment: alignment, findings: findings, names: PerSide(client: clientName, server: serverName)
      )
      .write(
        client: client, pairs: ListedClientPairs(alignment),
        jsonl: formats.contains(.jsonl) ? out + "/timeline.jsonl" : nil,
        html: formats.contains(.html) ? out + "/timeline.html" : nil)
    }
    let delays = [true, false].compactMap { direction in
      DelaySummary.exact(
        alignment.pairs.lazy.filter { $0.clientToServer == direction }.map {
          alignment.oneWayDelay(
            clientToServer: direction, client: $0.client.timeNanoseconds, server: $0.server.timeNanoseconds)
        }, clientToServer: direction)
    }
    var report = MergeReport(
      alignment, findings: findings, delays: delays, thresholds: FindingsBuilder.outlierThresholds(alignment),
      client: client, server: server)
    report.captureGaps = captureGaps
    if formats.contains(.report) {
      try report.write(into: out)
    }
    // Last: its presence says every output of this run is complete.
    try StagedFile.write(
      MergeOutputs.alignmentJSON(
        alignment, client: client, server: server, clientName: clientName, serverName: serverName),
      to: out + "/alignment.json")
    return Result(alignment: alignment, findings: findings, reportSections: report)
  }

  /// The outputs of a windowed walk, every one in flat memory: merged.pcapng from the note
  /// files, the findings and delay statistics from passes over the pair file, timeline.jsonl
  /// and timeline.html from one more pass over the client capture (`TimelinePass`).
  static func writeWindowed(
    _ alignment: inout Alignment, logs: PairLogs, observers: PerSide<CaptureFindingsObserver>?,
    client: String,
    server: String, out: String, names: PerSide<String>, formats: MergeFormats, reference: Side,
    captureGaps: [String]
  ) throws -> Result {
    var findings: [Finding] = []
    var thresholds: [OutlierThreshold] = []
    if let observers, let pairs = logs.pairs {
      (findings, thresholds) = try FindingsBuilder.build(alignment, observed: observers, logged: pairs)
    }
    // timeline.jsonl and timeline.html are written on another thread while merged.pcapng is
    // written here: the two passes read different files and share nothing they change.
    let timeline = BackgroundWork()
    if !formats.isDisjoint(with: [.jsonl, .html]), let pairs = logs.pairs {
      let snapshot = alignment
      timeline.start { [findings] in
        try TimelinePass(alignment: snapshot, findings: findings, names: names).write(
          client: client, pairs: try LoggedClientPairs(snapshot, logs: logs, pairs: pairs),
          jsonl: formats.contains(.jsonl) ? out + "/timeline.jsonl" : nil,
          html: formats.contains(.html) ? out + "/timeline.html" : nil)
      }
    }
    var delays: [DelaySummary] = []
    let written = Swift.Result { () throws -> Void in
      if formats.contains(.pcapng) {
        delays = try MergeOutputs.writeMergedPcapng(
          &alignment, logs: logs, client: client, server: server, clientName: names.client,
          serverName: names.server, to: out + "/merged.pcapng", reference: reference)
      } else if let pairs = logs.pairs {
        (delays, alignment.causalityViolations) = try MergeOutputs.delays(alignment, logged: pairs)
      }
    }
    try timeline.finish()
    try written.get()
    var report = MergeReport(
      alignment, findings: findings, delays: delays, thresholds: thresholds, client: client, server: server)
    report.captureGaps = captureGaps
    if formats.contains(.report) {
      try report.write(into: out)
    }
    // Last: its presence says every output of this run is complete.
    try StagedFile.write(
      MergeOutputs.alignmentJSON(
        alignment, client: client, server: server, clientName: names.client, serverName: names.server),
      to: out + "/alignment.json")
    return Result(alignment: alignment, findings: findings, reportSections: report)
  }

  /// One piece of work on its own thread; `finish` waits for it and rethrows its error.
  final class BackgroundWork: @unchecked Sendable {  // `failure` is written before `done` signals
    private let done = DispatchSemaphore(value: 0)
    private var started = false
    private var failure: (any Error)?

    func start(_ work: @escaping @Sendable () throws -> Void) {
      started = true
      let thread = Thread { [self] in
        do { try work() } catch { failure = error }
        done.signal()
      }
      thread.name = "smcpair-timeline"
      thread.stackSize = 4 << 20
      thread.start()
    }

    func finish() throws {
      guard started else { return }
      done.wait()
      if let failure { throw failure }
    }
  }

  /// An output folder that cannot be used: said before anything is read.
  public struct OutputFolderError: Error, CustomStringConvertible {
    public var description: String
  }

  /// Creates `out` (0700, whatever the umask: it fills with packet data) unless it is a
  /// folder already; removes temporary files that earlier merges killed midway left there,
  /// and the previous alignment.json (written last, it marks a complete set of outputs).
  static func prepareOutputFolder(_ out: String) throws(OutputFolderError) {
    var info = stat()
    if stat(out, &info) == 0 {
      guard info.st_mode & S_IFMT == S_IFDIR else {
        throw OutputFolderError(
          description:
            "--out \(out) exists and is not a folder; name a folder (it is created if missing), or remove the file"
        )
      }
    } else {
      // Each folder made here is 0700 (chmod after mkdir: the umask does not decide).
      var missing: [String] = []
      var folder = out
      while !folder.isEmpty, folder != "/", stat(folder, &info) != 0 {
        missing.append(folder)
        folder = parentFolder(of: folder)
      }
      for folder in missing.reversed() {
        guard mkdir(folder, 0o700) == 0 || errno == EEXIST else {
          throw OutputFolderError(
            description: "cannot create the output folder \(folder): \(Errno.current)")
        }
        _ = chmod(folder, 0o700)
      }
    }
    TemporaryFiles.removeStale(in: out)
    if unlink(out + "/alignment.json") != 0 && errno != ENOENT {
      throw OutputFolderError(
        description:
          "cannot replace \(out)/alignment.json: \(Errno.current); check the folder's permissions"
      )
    }
  }
}
