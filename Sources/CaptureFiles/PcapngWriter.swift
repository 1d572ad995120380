import Support

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Describes one interface for `PcapngWriter.addInterface`.
public struct InterfaceDescription: Sendable {
  public var name: String
  public var description: String?
  public var linkType: LinkType
  public var snapLength: UInt32
  public var filter: String?
  public var os: String?

  public init(
    name: String, description: String? = nil, linkType: LinkType, snapLength: UInt32 = 262_144,
    filter: String? = nil, os: String? = nil
  ) {
    self.name = name
    self.description = description
    self.linkType = linkType
    self.snapLength = snapLength
    self.filter = filter
    self.os = os
  }
}

/// Writes a pcapng file incrementally: one section, nanosecond interfaces, enhanced packet
/// blocks with comments, direction flags and packet ids, and interface statistics.
///
/// Data goes through a buffer; `flush()` pushes it to the file so that a reader (or a crash)
/// sees every packet written so far as a complete block. `close()` flushes and closes.
public final class PcapngWriter {
  public let path: String
  public private(set) var interfaceCount = 0
  public private(set) var packetCount = 0
  /// Bytes handed to the operating system so far (excluding the unflushed buffer).
  public private(set) var bytesWritten = 0
  /// Packets whose blocks have reached the file.
  public private(set) var packetsOnDisk = 0
  /// Bytes waiting in the buffer.
  public var bufferedBytes: Int { buffer.count }

  private var fd: Int32
  private var buffer: [UInt8] = []
  private let bufferLimit: Int

  /// Creates (truncates) `path` and writes the section header (`comment`: `shb_comment`).
  public init(
    path: String, application: String, os: String? = nil, hardware: String? = nil, comment: String? = nil,
    bufferSize: Int = 256 * 1024, mode: mode_t = 0o644
  ) throws(CaptureFileError) {
    self.path = path
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    if fd < 0 {
      let err = errno
      throw CaptureFileError(
        .io, "cannot create: \(Errno(rawValue: err))", path: path, systemError: err)
    }
    bufferLimit = bufferSize
    buffer.reserveCapacity(bufferSize + 65_600)
    var options = OptionWriter()
    if let comment { options.string(1, comment) }
    if let hardware { options.string(2, hardware) }
    if let os { options.string(3, os) }
    options.string(4, application)
    options.end()
    block(type: 0x0A0D_0D0A, fixedLength: 16, optionsLength: options.bytes.count) { out in
      out.u32(0x1A2B_3C4D)
      out.u16(1)
      out.u16(0)
      out.u64(UInt64.max)  // section length unknown
    } options: { out in
      out.append(options.bytes)
    }
    try flushIfNeeded()
  }

  deinit {
    if fd >= 0 {
      if failure == nil { try? flush() }
      _ = Glibc.close(fd)
    }
  }

  /// Adds an interface (IDB) with nanosecond timestamps; returns its id for `writePacket`.
  @discardableResult
  public func addInterface(_ interface: InterfaceDescription) throws(CaptureFileError) -> Int {
    var options = OptionWriter()
    options.string(2, interface.name)
    if let description = interface.description { options.string(3, description) }
    options.bytes(9, [9])  // if_tsresol: 10^-9
    if let filter = interface.filter { options.bytes(11, [0] + Array(filter.utf8)) }
    if let os = interface.os { options.string(12, os) }
    options.end()
    block(type: 1, fixedLength: 8, optionsLength: options.bytes.count) { out in
      out.u16(UInt16(truncatingIfNeeded: interface.linkType.rawValue))
      out.u16(0)
      out.u32(interface.snapLength)
    } options: { out in
      out.append(options.bytes)
    }
    interfaceCount += 1
    try flushIfNeeded()
    return interfaceCount - 1
  }

  /// Appends one packet as an enhanced packet block.
  public func writePacket(
    interface: Int, timestampNanoseconds: Int64, data: UnsafeRawBufferPointer, originalLength: Int? = nil,
    direction: PacketDirection = .unknown, comment: String? = nil, packetID: UInt64? = nil
  ) throws(CaptureFileError) {
    precondition(interface >= 0 && interface < interfaceCount, "unknown interface \(interface)")
    if let failure { throw failure }
    if comment == nil && packetID == nil {
      // The live-capture hot path: one append of the whole block, fields written in place.
      appendPlainPacket(
        interface: interface, timestampNanoseconds: timestampNanoseconds, data: data,
        originalLength: originalLength ?? data.count, direction: direction)
      packetCount += 1
      if buffer.count >= bufferLimit { try flush() }
      return
    }
    let padded = (data.count + 3) & ~3
    var optionsLength = 0
    if direction != .unknown { optionsLength += 8 }
    if let packetID { _ = packetID; optionsLength += 12 }
    var commentBytes: [UInt8] = []
    if let comment {
      commentBytes = Array(comment.utf8.prefix(65_535))
      optionsLength += 4 + ((commentBytes.count + 3) & ~3)
    }
    if optionsLength > 0 { optionsLength += 4 }
    let stamp = UInt64(bitPattern: timestampNanoseconds)
    block(type: 6, fixedLength: 20 + padded, optionsLength: optionsLength) { out in
      out.u32(UInt32(interface))
      out.u32(UInt32(truncatingIfNeeded: stamp >> 32))
      out.u32(UInt32(truncatingIfNeeded: stamp))
      out.u32(UInt32(data.count))
      out.u32(UInt32(originalLength ?? data.count))
      out.append(data)
      out.zeros(padded - data.count)
    } options: { out in
      guard optionsLength > 0 else { return }
      if !commentBytes.isEmpty || comment != nil {
        out.u16(1)
        out.u16(UInt16(commentBytes.count))
        out.append(commentBytes)
        out.zeros(((commentBytes.count + 3) & ~3) - commentBytes.count)
      }
      if direction != .unknown {
        out.u16(2)
        out.u16(4)
        out.u32(UInt32(direction.rawValue))
      }
      if let packetID {
        out.u16(5)
        out.u16(8)
        out.u64(packetID)
      }
      out.u32(0)
    }
    packetCount += 1
    try flushIfNeeded()
  }

  /// An EPB with a comment (UTF-8 bytes), direction flags and a packet id, written in place
  /// with one append (the merge hot path: two copies of every paired packet carry all three).
  public func writePacket(
    interface: Int, timestampNanoseconds: Int64, data: UnsafeRawBufferPointer, originalLength: Int,
    direction: PacketDirection, commentUTF8: UnsafeRawBufferPointer, packetID: UInt64
  ) throws(CaptureFileError) {
    precondition(interface >= 0 && interface < interfaceCount, "unknown interface \(interface)")
    if let failure { throw failure }
    let commentLength = min(commentUTF8.count, 65_535)
    let commentPadded = (commentLength + 3) & ~3
    let optionsLength = 4 + commentPadded + (direction != .unknown ? 8 : 0) + 12 + 4
    appendEPB(
      interface: interface, timestampNanoseconds: timestampNanoseconds, data: data,
      originalLength: originalLength,
      optionsLength: optionsLength
    ) { p, start in
      var o = start
      p.storeBytes(of: UInt16(1), toByteOffset: o, as: UInt16.self)
      p.storeBytes(of: UInt16(commentLength), toByteOffset: o + 2, as: UInt16.self)
      UnsafeMutableRawBufferPointer(rebasing: p[(o + 4)...]).copyMemory(
        from: UnsafeRawBufferPointer(rebasing: commentUTF8[..<commentLength]))
      o += 4 + commentPadded
      if direction != .unknown {
        p.storeBytes(of: UInt16(2), toByteOffset: o, as: UInt16.self)
        p.storeBytes(of: UInt16(4), toByteOffset: o + 2, as: UInt16.self)
        p.storeBytes(of: UInt32(direction.rawValue), toByteOffset: o + 4, as: UInt32.self)
        o += 8
      }
      p.storeBytes(of: UInt16(5), toByteOffset: o, as: UInt16.self)
      p.storeBytes(of: UInt16(8), toByteOffset: o + 2, as: UInt16.self)
      p.storeBytes(of: packetID, toByteOffset: o + 4, as: UInt64.self)
      // opt_endofopt (4 zero bytes) is already zero.
    }
    packetCount += 1
    if buffer.count >= bufferLimit { try flush() }
  }

  /// Appends a block of `length` zero bytes and lets `fill` write it in place.
  @inline(__always)
  private func appendBlock(length: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) {
    let start = buffer.count
    buffer.append(contentsOf: repeatElement(0, count: length))
    buffer.withUnsafeMutableBytes { raw in fill(UnsafeMutableRawBufferPointer(rebasing: raw[start...])) }
  }

  /// Appends an EPB with `optionsLength` bytes of options: header, data and trailing length
  /// are written here, `fillOptions` writes the options from the offset it is given (the
  /// block starts zeroed, so opt_endofopt costs nothing).
  @inline(__always)
  private func appendEPB(
    interface: Int, timestampNanoseconds: Int64, data: UnsafeRawBufferPointer, originalLength: Int,
    optionsLength: Int, _ fillOptions: (UnsafeMutableRawBufferPointer, Int) -> Void
  ) {
    let padded = (data.count + 3) & ~3
    let total = 32 + padded + optionsLength
    appendBlock(length: total) { p in
      Self.storeEPBHead(
        p, total: total, interface: interface, timestampNanoseconds: timestampNanoseconds, data: data,
        originalLength: originalLength)
      fillOptions(p, 28 + padded)
      p.storeBytes(of: UInt32(total), toByteOffset: total - 4, as: UInt32.self)
    }
  }

  /// The fixed part of an EPB (type, length, interface, timestamp, lengths) and its data.
  @inline(__always)
  private static func storeEPBHead(
    _ p: UnsafeMutableRawBufferPointer, total: Int, interface: Int, timestampNanoseconds: Int64,
    data: UnsafeRawBufferPointer, originalLength: Int
  ) {
    let stamp = UInt64(bitPattern: timestampNanoseconds)
    p.storeBytes(of: UInt32(6), toByteOffset: 0, as: UInt32.self)
    p.storeBytes(of: UInt32(total), toByteOffset: 4, as: UInt32.self)
    p.storeBytes(of: UInt32(interface), toByteOffset: 8, as: UInt32.self)
    p.storeBytes(of: UInt32(truncatingIfNeeded: stamp >> 32), toByteOffset: 12, as: UInt32.self)
    p.storeBytes(of: UInt32(truncatingIfNeeded: stamp), toByteOffset: 16, as: UInt32.self)
    p.storeBytes(of: UInt32(data.count), toByteOffset: 20, as: UInt32.self)
    p.storeBytes(of: UInt32(truncatingIfNeeded: originalLength), toByteOffset: 24, as: UInt32.self)
    UnsafeMutableRawBufferPointer(rebasing: p[28...]).copyMemory(from: data)
  }

  /// An EPB without options, or with only `epb_flags` (direction): 32 bytes of header and
  /// trailer around the padded data, plus 12 bytes of options when the direction is known.
  @inline(__always)
  private func appendPlainPacket(
    interface: Int, timestampNanoseconds: Int64, data: UnsafeRawBufferPointer, originalLength: Int,
    direction: PacketDirection = .unknown
  ) {
    appendEPB(
      interface: interface, timestampNanoseconds: timestampNanoseconds, data: data,
      originalLength: originalLength,
      optionsLength: direction == .unknown ? 0 : 12
    ) { p, start in
      guard direction != .unknown else { return }
      // epb_flags (code 2, length 4), then opt_endofopt (already zero).
      p.storeBytes(of: UInt16(2), toByteOffset: start, as: UInt16.self)
      p.storeBytes(of: UInt16(4), toByteOffset: start + 2, as: UInt16.self)
      p.storeBytes(of: UInt32(direction.rawValue), toByteOffset: start + 4, as: UInt32.self)
    }
  }

  /// Convenience for `[UInt8]` packet data.
  public func writePacket(
    interface: Int, timestampNanoseconds: Int64, bytes: [UInt8], originalLength: Int? = nil,
    direction: PacketDirection = .unknown, comment: String? = nil, packetID: UInt64? = nil
  ) throws(CaptureFileError) {
    let result: Result<Void, CaptureFileError> = bytes.withUnsafeBytes { raw in
      do throws(CaptureFileError) {
        try writePacket(
          interface: interface, timestampNanoseconds: timestampNanoseconds, data: raw,
          originalLength: originalLength, direction: direction, comment: comment, packetID: packetID)
        return .success(())
      } catch { return .failure(error) }
    }
    try result.get()
  }

  /// Appends an interface statistics block.
  public func writeStatistics(
    interface: Int, timestampNanoseconds: Int64, startNanoseconds: Int64? = nil,
    endNanoseconds: Int64? = nil, received: UInt64? = nil, dropped: UInt64? = nil,
    filterAccepted: UInt64? = nil, osDropped: UInt64? = nil, delivered: UInt64? = nil, comment: String? = nil
  ) throws(CaptureFileError) {
    precondition(interface >= 0 && interface < interfaceCount, "unknown interface \(interface)")
    var options = OptionWriter()
    if let comment { options.string(1, comment) }
    if let startNanoseconds { options.timestamp(2, startNanoseconds) }
    if let endNanoseconds { options.timestamp(3, endNanoseconds) }
    if let received { options.u64(4, received) }
    if let dropped { options.u64(5, dropped) }
    if let filterAccepted { options.u64(6, filterAccepted) }
    if let osDropped { options.u64(7, osDropped) }
    if let delivered { options.u64(8, delivered) }
    options.end()
    let stamp = UInt64(bitPattern: timestampNanoseconds)
    block(type: 5, fixedLength: 12, optionsLength: options.bytes.count) { out in
      out.u32(UInt32(interface))
      out.u32(UInt32(truncatingIfNeeded: stamp >> 32))
      out.u32(UInt32(truncatingIfNeeded: stamp))
    } options: { out in
      out.append(options.bytes)
    }
    try flushIfNeeded()
  }

  /// The error that stopped writing; once set, nothing more is written, so the file keeps
  /// ending at the last whole block.
  public private(set) var failure: CaptureFileError?

  /// Writes buffered blocks to the file.
  public func flush() throws(CaptureFileError) {
    if let failure { throw failure }
    guard fd >= 0 else { return }
    let total = buffer.count
    var failure: Int32 = 0
    do {
      try FileDescriptor(rawValue: fd).writeAll(buffer)
    } catch {
      failure = error.rawValue
    }
    if failure != 0 {
      // The buffer holds whole blocks only: cut the file back to where this flush began, so
      // it ends at a block boundary and stays readable.
      _ = ftruncate(fd, off_t(bytesWritten))
      _ = lseek(fd, off_t(bytesWritten), SEEK_SET)
      buffer.removeAll()
    } else {
      bytesWritten += total
      buffer.removeAll(keepingCapacity: true)
      packetsOnDisk = packetCount
    }
    if failure != 0 {
      let full = failure == ENOSPC || failure == EDQUOT
      let error = CaptureFileError(
        full ? .diskFull : .io,
        full
          ? "disk full while writing; the file keeps the \(bytesWritten) bytes (every packet block) written before this point"
          : "write failed: \(Errno(rawValue: failure))",
        path: path, offset: bytesWritten, salvagedPackets: packetsOnDisk, systemError: failure)
      self.failure = error
      throw error
    }
  }

  /// Flushes, syncs nothing, and closes. Further writes are a programming error.
  public func close() throws(CaptureFileError) {
    guard fd >= 0 else { return }
    defer {
      _ = Glibc.close(fd)
      fd = -1
    }
    if let failure { throw failure }
    try flush()
  }

  // MARK: - encoding

  private func flushIfNeeded() throws(CaptureFileError) {
    if buffer.count >= bufferLimit { try flush() }
  }

  /// Appends a block: header, fixed part, options, trailer.
  private func block(
    type: UInt32, fixedLength: Int, optionsLength: Int, fixed: (inout ByteSink) -> Void,
    options: (inout ByteSink) -> Void
  ) {
    let total = 12 + fixedLength + optionsLength
    var sink = ByteSink(buffer: buffer)
    buffer = []
    sink.u32(UInt32(type))
    sink.u32(UInt32(total))
    fixed(&sink)
    options(&sink)
    sink.u32(UInt32(total))
    buffer = sink.buffer
  }
}

/// Little helper that appends native-endian integers (pcapng sections are written in the
/// writer's byte order, announced by the byte-order magic).
struct ByteSink {
  var buffer: [UInt8]

  mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value) { buffer.append(contentsOf: $0) } }
  mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value) { buffer.append(contentsOf: $0) } }
  mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value) { buffer.append(contentsOf: $0) } }
  mutating func append(_ bytes: UnsafeRawBufferPointer) { buffer.append(contentsOf: bytes) }
  mutating func append(_ bytes: [UInt8]) { buffer.append(contentsOf: bytes) }
  mutating func zeros(_ count: Int) {
    for _ in 0..<count { buffer.append(0) }
  }
}

/// Builds a pcapng option list.
struct OptionWriter {
  var sink = ByteSink(buffer: [])
  var bytes: [UInt8] { sink.buffer }

  mutating func bytes(_ code: UInt16, _ value: [UInt8]) {
    let length = min(value.count, 65_535)
    sink.u16(code)
    sink.u16(UInt16(length))
    sink.append(Array(value.prefix(length)))
    sink.zeros(((length + 3) & ~3) - length)
  }
  mutating func string(_ code: UInt16, _ value: String) { bytes(code, Array(value.utf8)) }
  mutating func u64(_ code: UInt16, _ value: UInt64) {
    sink.u16(code)
    sink.u16(8)
    sink.u64(value)
  }
  /// Timestamps in options are two 32-bit halves, high first.
  mutating func timestamp(_ code: UInt16, _ nanoseconds: Int64) {
    let value = UInt64(bitPattern: nanoseconds)
    sink.u16(code)
    sink.u16(8)
    sink.u32(UInt32(truncatingIfNeeded: value >> 32))
    sink.u32(UInt32(truncatingIfNeeded: value))
  }
  mutating func end() {
    sink.u16(0)
    sink.u16(0)
  }
}
