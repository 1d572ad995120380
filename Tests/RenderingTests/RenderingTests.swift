import CaptureFiles
import Foundation
import JSON
import SMCSynthesis
import SMCWire
import Support
import TestSupport
import Testing

@testable import Rendering

@Suite struct UTCTimes {
  @Test func civilTimeFromEpochNanoseconds() {
    let time = UTCTime(epochNanoseconds: 1_764_000_000_000_175_000)
    #expect(time.iso8601 == "2025-11-24T16:00:00.000175000Z")
    #expect(time.date == "2025-11-24")
  }

  @Test func beforeTheEpoch() {
    let time = UTCTime(epochNanoseconds: -1)
    #expect(time.iso8601 == "1969-12-31T23:59:59.999999999Z")
  }
}

@Suite struct OutputSinks {
  @Test func collectsEscapedJSONEndpointsAndNumbers() {
    var sink = OutputSink(fd: -1)
    sink.appendJSONString("a\"b\\c\n\u{01}")
    sink.append(" ")
    sink.appendEndpoint(Endpoint(IPAddress(ipv4: 0x0A00_0001), 8000))
    sink.append(" ")
    sink.appendSignedDecimal(-42)
    sink.append(" ")
    sink.appendHex(0xBEEF, minimumDigits: 8)
    #expect(String(decoding: sink.bytes, as: UTF8.self) == #""a\"b\\c\n\u0001" 10.0.0.1:8000 -42 0000beef"#)
  }

  @Test func flushesEverythingThroughAPipe() throws {
    var fds: [Int32] = [0, 0]
    try #require(pipe(&fds) == 0)
    defer { close(fds[0]) }
    var sink = OutputSink(fd: fds[1], bufferSize: 16)
    for index in 0..<100 {
      sink.appendDecimal(UInt64(index))
      sink.append(",")
      sink.flushIfNeeded()
    }
    sink.flush()
    close(fds[1])
    #expect(!sink.failed)
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = read(fds[0], &buffer, buffer.count)
      if n <= 0 { break }
      received += buffer[..<n]
    }
    #expect(String(decoding: received, as: UTF8.self) == (0..<100).map { "\($0)," }.joined())
  }

  @Test func aClosedReaderFailsTheSinkInsteadOfBlocking() throws {
    var fds: [Int32] = [0, 0]
    try #require(pipe(&fds) == 0)
    close(fds[0])
    signal(SIGPIPE, SIG_IGN)
    var sink = OutputSink(fd: fds[1])
    sink.append("lost")
    sink.flush()
    close(fds[1])
    #expect(sink.failed)
  }
}

@Suite struct TimelinePageEmbedding {
  @Test func dataCannotCloseTheScript() {
    let ending = TimelineHTML.ending(metadata: #"{"message":"</script><b>"}"#)
    #expect(ending.contains(#"{"message":"<\/script><b>"}"#))
    #expect(!ending.contains(#"</script><b>"#))
    #expect(TimelineHTML.head.hasPrefix("<!doctype html>"))
    #expect(ending.hasSuffix("</body></html>\n"))
  }

  @Test func stringsForTheScriptEscapeAngleBrackets() {
    #expect(TimelineHTML.jsonString("a<b") == #""a\u003cb""#)
  }
}

@Suite struct DecodeRenderers {
  func decodedEvents() throws -> (DecodeSummary, [SMCEvent], String) {
    let dir = try TemporaryDirectory()
    let path = dir.file("c.pcapng")
    let writer = try PcapngWriter(path: path, application: "t")
    try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
    try writer.addInterface(InterfaceDescription(name: "smc-dummy0001", linkType: .ethernet))
    let spec = ConversationSpec(
      scenario: .smcR(version: 2), client: Endpoint(IPAddress(ipv4: 0x0A00_0001), 41000),
      server: Endpoint(IPAddress(ipv4: 0x0A00_0002), 7000))
    try ConversationSynthesizer(spec: spec, side: .client).generate { frame in
      try writer.writePacket(
        interface: frame.interface, timestampNanoseconds: frame.timeNanoseconds, bytes: frame.bytes,
        direction: frame.direction)
    }
    try writer.close()
    let decoder = try CaptureDecoder(path: path)
    var events: [SMCEvent] = []
    try decoder.run { events.append($0) }
    return (decoder.summary, events, path)
  }

  @Test func jsonLinesParseWithTheDocumentedFields() throws {
    let (_, events, path) = try decodedEvents()
    var renderer = DecodeJSONRenderer(sink: OutputSink(fd: -1), file: path)
    renderer.setInterfaces(["eth0", "smc-dummy0001"])
    for event in events { renderer.render(event) }
    let lines = String(decoding: renderer.sink.bytes, as: UTF8.self).split(separator: "\n")
    #expect(lines.count == events.count)
    var kinds: Set<String> = []
    for line in lines {
      let value = try JSONValue.parse(String(line))
      #expect(value["file"]?.string == path)
      #expect(value["src"]?.string == "10.0.0.1:41000" || value["dst"]?.string == "10.0.0.1:41000")
      if let kind = value["kind"]?.string { kinds.insert(kind) }
    }
    #expect(kinds == ["tcp", "clc", "cdc", "data"])
  }

  @Test func tableAndSummaryNameTheConnection() throws {
    let (summary, events, _) = try decodedEvents()
    var table = DecodeTableRenderer(sink: OutputSink(fd: -1))
    table.setInterfaces(["eth0", "smc-dummy0001"])
    table.header(file: "c.pcapng")
    for event in events { table.render(event) }
    let text = String(decoding: table.sink.bytes, as: UTF8.self)
    #expect(text.hasPrefix("== c.pcapng\nTIME (UTC)"))
    #expect(text.contains("10.0.0.1:41000 -> 10.0.0.2:7000"))
    #expect(text.contains("clc   proposal v2"))
    let summaryText = DecodeSummaryText.render(summary)
    #expect(summaryText.contains("connections: 1 (SMC-R 1)"))
  }
}

@Suite struct StandardErrorWrites {
  @Test func writeAllRetriesUntilEveryByteIsWritten() throws {
    var fds: [Int32] = [0, 0]
    try #require(pipe(&fds) == 0)
    defer { close(fds[0]) }
    let text = Array(repeating: UInt8(ascii: "x"), count: 10_000)
    let ok = text.withUnsafeBytes { writeAll(to: fds[1], $0) }
    close(fds[1])
    #expect(ok)
    var total = 0
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = read(fds[0], &buffer, buffer.count)
      if n <= 0 { break }
      total += n
    }
    #expect(total == 10_000)
  }

  /// As `dirname`, but "" for a bare name; Foundation's `deletingLastPathComponent` died on
  /// "m" (SIGILL), which made `smcpair merge --out m` crash.
  @Test(arguments: [
    ("m", ""), ("ab", ""), ("a/b", "a"), ("a/b/", "a"), ("a//b", "a"), ("/a", "/"), ("/", "/"), ("./m", "."),
    ("/x/y/z", "/x/y"), ("", ""),
  ])
  func parentFoldersAsDirname(path: String, parent: String) {
    #expect(parentFolder(of: path) == parent)
  }

  @Test func siblingExecutablesSitNextToTheRunningOne() {
    let path = siblingExecutable("smcpair-agent")
    #expect(path.hasSuffix("/smcpair-agent"))
    #expect(path.hasPrefix("/"))
  }
}
