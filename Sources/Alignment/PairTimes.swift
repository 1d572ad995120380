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

/// One pair of a windowed walk: both copies' times and frames, the kind and the flow (index
/// into `PairTimes.flows`).
public struct LoggedPair: Sendable, Equatable {
  public var clientTime: Int64
  public var serverTime: Int64
  public var clientFrame: Int
  public var serverFrame: Int
  public var kind: PairKind
  public var flow: Int
}

/// Every pair of a windowed walk, in a file (32 bytes a pair, in pair-number order) read back
/// in passes or by pair number, so what needs every pair (delay statistics, outliers, the
/// timeline) does not hold them in memory. Frames are kept as 32-bit numbers.
public struct PairTimes: Sendable {
  public var path: String
  /// The flows the pairs refer to (one entry per flow: memory follows connections).
  public var flows: [EndpointFlow]
  public var count: Int

  static let recordSize = 32

  /// Calls `body` with every pair, in the order the walk made them.
  public func forEach(_ body: (LoggedPair) -> Void) throws(CaptureFileError) {
    let reader = try PairTimesReader(self)
    for index in 0..<reader.count {
      body(try reader.pair(at: index))
      if index & 0x1_FFFF == 0x1_FFFF { reader.release(before: index) }
    }
  }
}

/// Reads the pairs of a `PairTimes` file by index (pair number - 1), mapped.
public final class PairTimesReader {
  private let file: MappedFile
  private let times: PairTimes
  public let count: Int

  public init(_ times: PairTimes) throws(CaptureFileError) {
    file = try MappedFile(path: times.path)
    self.times = times
    count = file.bytes.count / PairTimes.recordSize
  }

  private var furthest = 0
  private var released = 0

  /// The pair at `index` (0-based: pair number - 1). Pages far behind the furthest pair asked
  /// for are let go (pair numbers follow time, so a reader in time order keeps memory flat).
  public func pair(at index: Int) throws(CaptureFileError) -> LoggedPair {
    let offset = index * PairTimes.recordSize
    if offset > furthest {
      furthest = offset
      if furthest - released >= 1 << 23 {
        released = furthest - (1 << 22)
        file.releasePages(before: released)
      }
    }
    guard index >= 0, index < count else {
      throw CaptureFileError(.corrupt, "pair \(index + 1) is not in the pair notes", path: times.path)
    }
    let bytes = file.bytes
    let clientTime = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int64.self))
    let serverTime = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: Int64.self))
    let clientFrame = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
    let serverFrame = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 20, as: UInt32.self))
    let flow = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 24, as: UInt32.self))
    let kind = Int(bytes[offset + 28])
    guard kind < PairKind.allCases.count, Int(flow) < times.flows.count else {
      throw CaptureFileError(.corrupt, "pair note at byte \(offset) is damaged", path: times.path)
    }
    return LoggedPair(
      clientTime: clientTime, serverTime: serverTime, clientFrame: Int(clientFrame),
      serverFrame: Int(serverFrame), kind: PairKind.allCases[kind], flow: Int(flow))
  }

  /// Lets the pages before pair `index` go (a front-to-back reader keeps memory flat).
  public func release(before index: Int) { file.releasePages(before: index * PairTimes.recordSize) }
}

/// Appends the pairs of a walk to a file through a buffer; keeps the flow table.
final class PairTimesWriter {
  private let file: PairingFile
  var path: String { file.path }
  private(set) var flows: [EndpointFlow] = []
  private var flowIDs: [EndpointFlow: UInt32] = [:]
  private var lastFlow: (EndpointFlow, UInt32)?
  private(set) var count = 0

  init(path: String) throws(CaptureFileError) { file = try PairingFile(path: path) }

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
    guard client.frame <= Int(UInt32.max), server.frame <= Int(UInt32.max) else {
      throw CaptureFileError(.unsupported, "more than \(UInt32.max) packets in one capture", path: path)
    }
    let flow = flowID(EndpointFlow(source: client.source, destination: client.destination))
    let frames =
      UInt64(UInt32(truncatingIfNeeded: client.frame)) | UInt64(UInt32(truncatingIfNeeded: server.frame))
      << 32
    let tail = UInt64(flow) | UInt64(client.kind.index) << 32
    try file.append(
      (
        client.timeNanoseconds.littleEndian, server.timeNanoseconds.littleEndian, frames.littleEndian,
        tail.littleEndian
      ))
    count += 1
  }

  func close() throws(CaptureFileError) { try file.close() }

  var times: PairTimes { PairTimes(path: path, flows: flows, count: count) }
}
