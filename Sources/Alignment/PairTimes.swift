import CaptureFiles
import Foundation
import SMCWire

/// The endpoints of one way of a connection, as a pair's client copy shows them.
public struct EndpointFlow: Hashable, Sendable {
  public var source: Endpoint
  public var destination: Endpoint

  public init(source: Endpoint, destination: Endpoint) {
    self.source = source
    self.destination = destination
  }
}

/// One pair of a windowed walk: both copies' times, the client copy's frame, the kind and
/// the flow (index into `PairTimes.flows`).
public struct LoggedPair: Sendable, Equatable {
  public var clientTime: Int64
  public var serverTime: Int64
  public var clientFrame: Int
  public var kind: PairKind
  public var flow: Int
}

/// Every pair of a windowed walk, in a file (32 bytes a pair) read back in passes, so what
/// needs every pair (delay statistics, outliers) does not hold them in memory.
public struct PairTimes: Sendable {
  public var path: String
  /// The flows the pairs refer to (one entry per flow: memory follows connections).
  public var flows: [EndpointFlow]
  public var count: Int

  static let recordSize = 32

  /// Calls `body` with every pair, in the order the walk made them.
  public func forEach(_ body: (LoggedPair) -> Void) throws(CaptureFileError) {
    let file = try MappedFile(path: path)
    let bytes = file.bytes
    var offset = 0
    while offset + Self.recordSize <= bytes.count {
      let clientTime = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int64.self))
      let serverTime = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: Int64.self))
      let frame = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 16, as: Int64.self))
      let flow = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 24, as: UInt32.self))
      let kind = Int(bytes[offset + 28])
      guard kind < PairKind.allCases.count, Int(flow) < flows.count else {
        throw CaptureFileError(.corrupt, "pair note at byte \(offset) is damaged", path: path)
      }
      body(
        LoggedPair(
          clientTime: clientTime, serverTime: serverTime, clientFrame: Int(frame),
          kind: PairKind.allCases[kind],
          flow: Int(flow)))
      offset += Self.recordSize
      if offset & ((1 << 22) - 1) == 0 { file.releasePages(before: offset) }
    }
  }
}

/// Appends the pairs of a walk to a file through a buffer; keeps the flow table.
final class PairTimesWriter {
  let path: String
  private let handle: FileHandle
  private var buffer: [UInt8] = []
  private(set) var flows: [EndpointFlow] = []
  private var flowIDs: [EndpointFlow: UInt32] = [:]
  private var lastFlow: (EndpointFlow, UInt32)?
  private(set) var count = 0

  init(path: String) throws(CaptureFileError) {
    self.path = path
    TemporaryFiles.register(path)
    guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
      let handle = FileHandle(forWritingAtPath: path)
    else {
      throw CaptureFileError(
        .io, "cannot create a temporary pairing file; check the output folder", path: path)
    }
    self.handle = handle
    buffer.reserveCapacity(1 << 20)
  }

  private func flowID(_ flow: EndpointFlow) -> UInt32 {
    if let lastFlow, lastFlow.0 == flow { return lastFlow.1 }
    let id: UInt32
    if let known = flowIDs[flow] {
      id = known
    } else {
      id = UInt32(truncatingIfNeeded: flows.count)
      flows.append(flow)
      flowIDs[flow] = id
    }
    lastFlow = (flow, id)
    return id
  }

  func append(client: SidePacket, server: SidePacket) throws(CaptureFileError) {
    let flow = flowID(EndpointFlow(source: client.source, destination: client.destination))
    let tail = UInt64(flow) | UInt64(client.kind.index) << 32
    withUnsafeBytes(
      of: (
        client.timeNanoseconds.littleEndian, server.timeNanoseconds.littleEndian,
        Int64(client.frame).littleEndian, tail.littleEndian
      )
    ) { buffer.append(contentsOf: $0) }
    count += 1
    if buffer.count >= 1 << 20 { try flush() }
  }

  private func flush() throws(CaptureFileError) {
    guard !buffer.isEmpty else { return }
    do {
      try handle.write(contentsOf: buffer)
    } catch {
      throw CaptureFileError(.io, "cannot write a temporary pairing file: \(error)", path: path)
    }
    buffer.removeAll(keepingCapacity: true)
  }

  func close() throws(CaptureFileError) {
    try flush()
    try? handle.close()
  }

  var times: PairTimes { PairTimes(path: path, flows: flows, count: count) }
}
