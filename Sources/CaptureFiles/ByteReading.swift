/// Unaligned integer reads from raw bytes, used by every decoder.
///
/// Callers check bounds before reading; these helpers do not, so that the hot paths stay
/// free of redundant checks.
extension UnsafeRawBufferPointer {
  @inlinable @inline(__always)
  public func u8(_ offset: Int) -> UInt8 {
    load(fromByteOffset: offset, as: UInt8.self)
  }

  @inlinable @inline(__always)
  public func u16be(_ offset: Int) -> UInt16 {
    UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
  }

  @inlinable @inline(__always)
  public func u16le(_ offset: Int) -> UInt16 {
    UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
  }

  @inlinable @inline(__always)
  public func u32be(_ offset: Int) -> UInt32 {
    UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }

  @inlinable @inline(__always)
  public func u32le(_ offset: Int) -> UInt32 {
    UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }

  @inlinable @inline(__always)
  public func u64be(_ offset: Int) -> UInt64 {
    UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }

  @inlinable @inline(__always)
  public func u64le(_ offset: Int) -> UInt64 {
    UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }

  /// Reads a 16-bit value in the given byte order.
  @inlinable @inline(__always)
  public func u16(_ offset: Int, bigEndian: Bool) -> UInt16 {
    bigEndian ? u16be(offset) : u16le(offset)
  }

  /// Reads a 32-bit value in the given byte order.
  @inlinable @inline(__always)
  public func u32(_ offset: Int, bigEndian: Bool) -> UInt32 {
    bigEndian ? u32be(offset) : u32le(offset)
  }

  /// Reads a 64-bit value in the given byte order.
  @inlinable @inline(__always)
  public func u64(_ offset: Int, bigEndian: Bool) -> UInt64 {
    bigEndian ? u64be(offset) : u64le(offset)
  }

  /// A sub-range as its own buffer (no copy).
  @inlinable @inline(__always)
  public func slice(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(rebasing: self[offset..<(offset + count)])
  }
}
