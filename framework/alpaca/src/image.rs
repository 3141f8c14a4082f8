//! Camera images: [`ImageArray`] (what devices return) and its two wire forms, the JSON
//! nesting `[x][y]` / `[x][y][plane]` (PROTOCOL.md §6.1) and ImageBytes (§6.2: a 44-byte
//! little-endian header followed by x-major, then y, then plane data).

use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::error::{AlpacaError, ErrorCode};

/// ImageBytes element type codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ImageElementType {
    Unknown = 0,
    Int16 = 1,
    #[default]
    Int32 = 2,
    Double = 3,
    Single = 4,
    UInt64 = 5,
    Byte = 6,
    Int64 = 7,
    UInt16 = 8,
    UInt32 = 9,
}

impl ImageElementType {
    pub fn from_code(code: i32) -> Option<Self> {
        use ImageElementType::*;
        Some(match code {
            0 => Unknown,
            1 => Int16,
            2 => Int32,
            3 => Double,
            4 => Single,
            5 => UInt64,
            6 => Byte,
            7 => Int64,
            8 => UInt16,
            9 => UInt32,
            _ => return None,
        })
    }

    pub fn code(self) -> i32 {
        self as i32
    }

    /// Bytes per element on the wire (0 for `Unknown`).
    pub fn size(self) -> usize {
        use ImageElementType::*;
        match self {
            Unknown => 0,
            Byte => 1,
            Int16 | UInt16 => 2,
            Int32 | UInt32 | Single => 4,
            Double | Int64 | UInt64 => 8,
        }
    }

    /// Whether `v` can be sent as this type without loss.
    fn holds(self, v: i32) -> bool {
        use ImageElementType::*;
        match self {
            Byte => (0..=255).contains(&v),
            Int16 => (i16::MIN as i32..=i16::MAX as i32).contains(&v),
            UInt16 => (0..=u16::MAX as i32).contains(&v),
            UInt32 | UInt64 => v >= 0,
            Unknown => false,
            Int32 | Int64 | Double | Single => true,
        }
    }
}

/// Problems building or decoding an image.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("image data has {actual} elements but the dimensions need {expected}")]
    WrongLength { expected: usize, actual: usize },
    #[error("image dimensions must be at least 1 (got {0:?})")]
    BadDimensions([u32; 3]),
    #[error("ImageBytes is shorter than its header ({0} bytes)")]
    ShortHeader(usize),
    #[error("ImageBytes metadata version {0} is not supported")]
    UnsupportedVersion(i32),
    #[error("ImageBytes header field {field} is invalid ({value})")]
    BadHeader { field: &'static str, value: i64 },
    #[error("ImageBytes element type {0} is not supported")]
    UnsupportedElementType(i32),
    #[error("ImageBytes payload has {actual} bytes, expected {expected}")]
    WrongPayloadLength { expected: usize, actual: usize },
    #[error("pixel value {0} does not fit in a 32-bit integer")]
    ValueOutOfRange(String),
    #[error("JSON image is malformed: {0}")]
    BadJson(String),
}

/// A camera image: 2-D (`planes == 0`) or 3-D (colour planes), `i32` pixels stored in
/// `[x][y][plane]` order, plus a hint for the narrowest wire type the data is known to fit
/// (e.g. `UInt16` for a 16-bit sensor). The hint is only used when every value really fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageArray {
    dims: [u32; 3],
    data: Vec<i32>,
    transmission_hint: ImageElementType,
}

impl ImageArray {
    /// A single-plane image, `data[x * height + y]`.
    pub fn new_2d(width: u32, height: u32, data: Vec<i32>) -> Result<Self, ImageError> {
        Self::build([width, height, 0], data)
    }

    /// A multi-plane image, `data[(x * height + y) * planes + p]`.
    pub fn new_3d(
        width: u32,
        height: u32,
        planes: u32,
        data: Vec<i32>,
    ) -> Result<Self, ImageError> {
        if planes == 0 {
            return Err(ImageError::BadDimensions([width, height, planes]));
        }
        Self::build([width, height, planes], data)
    }

    /// A single-plane image from a pixel function `f(x, y)`.
    pub fn from_fn_2d(width: u32, height: u32, mut f: impl FnMut(u32, u32) -> i32) -> Self {
        let mut data = Vec::with_capacity(width as usize * height as usize);
        for x in 0..width {
            for y in 0..height {
                data.push(f(x, y));
            }
        }
        Self {
            dims: [width, height, 0],
            data,
            transmission_hint: ImageElementType::Int32,
        }
    }

    fn build(dims: [u32; 3], data: Vec<i32>) -> Result<Self, ImageError> {
        let expected = element_count(dims);
        if data.len() != expected {
            return Err(ImageError::WrongLength {
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            dims,
            data,
            transmission_hint: ImageElementType::Int32,
        })
    }

    /// Prefer this narrower wire type (Byte, Int16 or UInt16) when the data fits.
    pub fn with_transmission_hint(mut self, hint: ImageElementType) -> Self {
        self.transmission_hint = hint;
        self
    }

    pub fn transmission_hint(&self) -> ImageElementType {
        self.transmission_hint
    }

    /// 2 or 3.
    pub fn rank(&self) -> u32 {
        if self.dims[2] == 0 { 2 } else { 3 }
    }

    /// NumX.
    pub fn width(&self) -> u32 {
        self.dims[0]
    }

    /// NumY.
    pub fn height(&self) -> u32 {
        self.dims[1]
    }

    /// Colour planes; 0 for a rank-2 image.
    pub fn planes(&self) -> u32 {
        self.dims[2]
    }

    pub fn data(&self) -> &[i32] {
        &self.data
    }

    pub fn into_data(self) -> Vec<i32> {
        self.data
    }

    /// Pixel at `(x, y, plane)`; `plane` is ignored for rank 2.
    pub fn get(&self, x: u32, y: u32, plane: u32) -> Option<i32> {
        let [w, h, p] = self.dims;
        if x >= w || y >= h || (p > 0 && plane >= p) {
            return None;
        }
        let p = p.max(1) as usize;
        let idx =
            (x as usize * h as usize + y as usize) * p + if p > 1 { plane as usize } else { 0 };
        self.data.get(idx).copied()
    }

    /// The wire type actually used for ImageBytes: the hint when every value fits, else Int32.
    pub fn transmission_type(&self) -> ImageElementType {
        use ImageElementType::*;
        let hint = self.transmission_hint;
        if matches!(hint, Byte | Int16 | UInt16) && self.data.iter().all(|&v| hint.holds(v)) {
            hint
        } else {
            Int32
        }
    }

    /// A serialisable view of the JSON `Value` nesting (`[x][y]` or `[x][y][plane]`).
    pub fn json_value(&self) -> ImageJsonValue<'_> {
        ImageJsonValue(self)
    }

    /// Builds an image from the JSON `Value`; `rank` from the envelope (inferred when absent).
    /// Doubles (ImageArrayVariant type 3) are rounded.
    pub fn from_json_value(
        value: &serde_json::Value,
        rank: Option<u32>,
    ) -> Result<Self, ImageError> {
        let bad = |m: &str| ImageError::BadJson(m.to_owned());
        let outer = value
            .as_array()
            .ok_or_else(|| bad("Value is not an array"))?;
        let width = outer.len();
        let first = outer.first().and_then(|c| c.as_array());
        let height = first.map_or(0, |c| c.len());
        let inferred = match first.and_then(|c| c.first()) {
            Some(serde_json::Value::Array(_)) => 3,
            _ => 2,
        };
        let rank = rank.unwrap_or(inferred);
        let planes = if rank == 3 {
            first
                .and_then(|c| c.first())
                .and_then(|p| p.as_array())
                .map_or(0, |p| p.len())
        } else {
            0
        };
        let mut data = Vec::with_capacity(width * height * planes.max(1));
        for column in outer {
            let column = column
                .as_array()
                .ok_or_else(|| bad("column is not an array"))?;
            if column.len() != height {
                return Err(bad("columns have different lengths"));
            }
            for cell in column {
                if rank == 3 {
                    let px = cell
                        .as_array()
                        .ok_or_else(|| bad("pixel is not an array"))?;
                    if px.len() != planes {
                        return Err(bad("pixels have different plane counts"));
                    }
                    for v in px {
                        data.push(json_pixel(v)?);
                    }
                } else {
                    data.push(json_pixel(cell)?);
                }
            }
        }
        let dims = [u32_dim(width)?, u32_dim(height)?, u32_dim(planes)?];
        Self::build(dims, data)
    }
}

fn u32_dim(n: usize) -> Result<u32, ImageError> {
    u32::try_from(n).map_err(|_| ImageError::ValueOutOfRange(n.to_string()))
}

fn json_pixel(v: &serde_json::Value) -> Result<i32, ImageError> {
    if let Some(i) = v.as_i64() {
        return i32::try_from(i).map_err(|_| ImageError::ValueOutOfRange(i.to_string()));
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f >= i32::MIN as f64 && f <= i32::MAX as f64 => {
            Ok(f.round() as i32)
        }
        _ => Err(ImageError::ValueOutOfRange(v.to_string())),
    }
}

fn element_count(dims: [u32; 3]) -> usize {
    dims[0] as usize * dims[1] as usize * (dims[2].max(1)) as usize
}

/// Serialises an [`ImageArray`] as nested JSON arrays without building a `serde_json::Value`.
pub struct ImageJsonValue<'a>(&'a ImageArray);

impl Serialize for ImageJsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let img = self.0;
        let h = img.height() as usize;
        let p = img.planes() as usize;
        let stride = h * p.max(1);
        let mut outer = s.serialize_seq(Some(img.width() as usize))?;
        if stride == 0 {
            for _ in 0..img.width() {
                outer.serialize_element(&[0i32; 0])?;
            }
            return outer.end();
        }
        for column in img.data.chunks(stride) {
            outer.serialize_element(&Column { column, planes: p })?;
        }
        outer.end()
    }
}

struct Column<'a> {
    column: &'a [i32],
    planes: usize,
}

impl Serialize for Column<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.planes == 0 {
            return self.column.serialize(s);
        }
        let mut seq = s.serialize_seq(Some(self.column.len() / self.planes))?;
        for px in self.column.chunks(self.planes) {
            seq.serialize_element(px)?;
        }
        seq.end()
    }
}

/// Length of the version-1 ImageBytes header.
pub const IMAGE_BYTES_HEADER_LEN: usize = 44;
/// The MIME type that selects the binary form.
pub const IMAGE_BYTES_MIME: &str = "application/imagebytes";

fn header(
    error_number: i32,
    client_transaction_id: u32,
    server_transaction_id: u32,
    image_type: i32,
    transmission_type: i32,
    dims: [u32; 4],
) -> Vec<u8> {
    let fields: [u32; 11] = [
        1,
        error_number as u32,
        client_transaction_id,
        server_transaction_id,
        IMAGE_BYTES_HEADER_LEN as u32,
        image_type as u32,
        transmission_type as u32,
        dims[0],
        dims[1],
        dims[2],
        dims[3],
    ];
    let mut out = Vec::with_capacity(IMAGE_BYTES_HEADER_LEN);
    for f in fields {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out
}

/// Encodes a successful image as ImageBytes (metadata version 1). The image element type is
/// always Int32; the transmission type is [`ImageArray::transmission_type`].
pub fn encode_image_bytes(
    img: &ImageArray,
    client_transaction_id: u32,
    server_transaction_id: u32,
) -> Vec<u8> {
    let tx = img.transmission_type();
    let [w, h, p] = img.dims;
    let mut out = header(
        0,
        client_transaction_id,
        server_transaction_id,
        ImageElementType::Int32.code(),
        tx.code(),
        [img.rank(), w, h, p],
    );
    out.reserve(img.data.len() * tx.size());
    // Narrowing casts are lossless: transmission_type() checked every value fits.
    match tx {
        ImageElementType::Byte => out.extend(img.data.iter().map(|&v| v as u8)),
        ImageElementType::Int16 => img
            .data
            .iter()
            .for_each(|&v| out.extend_from_slice(&(v as i16).to_le_bytes())),
        ImageElementType::UInt16 => img
            .data
            .iter()
            .for_each(|&v| out.extend_from_slice(&(v as u16).to_le_bytes())),
        _ => img
            .data
            .iter()
            .for_each(|&v| out.extend_from_slice(&v.to_le_bytes())),
    }
    out
}

/// Encodes an ASCOM error as ImageBytes: header with the error number, message as UTF-8 payload.
pub fn encode_image_bytes_error(
    err: &AlpacaError,
    client_transaction_id: u32,
    server_transaction_id: u32,
) -> Vec<u8> {
    let mut out = header(
        i32::from(err.code.0),
        client_transaction_id,
        server_transaction_id,
        0,
        0,
        [0; 4],
    );
    out.extend_from_slice(err.message.as_bytes());
    out
}

/// A decoded ImageBytes reply.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageBytesReply {
    pub client_transaction_id: u32,
    pub server_transaction_id: u32,
    /// The image element type the device declared (the source array type).
    pub image_element_type: ImageElementType,
    pub result: Result<ImageArray, AlpacaError>,
}

fn read_i32(buf: &[u8], field: usize) -> i32 {
    let at = field * 4;
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_le_bytes(b)
}

/// Decodes an ImageBytes body, widening Byte/Int16/UInt16 (and other integer types that fit)
/// back to `i32` and rounding floating types.
pub fn decode_image_bytes(buf: &[u8]) -> Result<ImageBytesReply, ImageError> {
    if buf.len() < IMAGE_BYTES_HEADER_LEN {
        return Err(ImageError::ShortHeader(buf.len()));
    }
    let version = read_i32(buf, 0);
    if version != 1 {
        return Err(ImageError::UnsupportedVersion(version));
    }
    let error_number = read_i32(buf, 1);
    let client_transaction_id = read_i32(buf, 2) as u32;
    let server_transaction_id = read_i32(buf, 3) as u32;
    let data_start = read_i32(buf, 4);
    let bad = |field: &'static str, value: i32| ImageError::BadHeader {
        field,
        value: i64::from(value),
    };
    let start = usize::try_from(data_start)
        .ok()
        .filter(|&s| s >= IMAGE_BYTES_HEADER_LEN && s <= buf.len())
        .ok_or_else(|| bad("DataStart", data_start))?;
    let image_type_code = read_i32(buf, 5);
    let image_element_type =
        ImageElementType::from_code(image_type_code).unwrap_or(ImageElementType::Unknown);
    let payload = &buf[start..];
    if error_number != 0 {
        let code = u16::try_from(error_number).map_err(|_| bad("ErrorNumber", error_number))?;
        let message = String::from_utf8_lossy(payload).into_owned();
        return Ok(ImageBytesReply {
            client_transaction_id,
            server_transaction_id,
            image_element_type,
            result: Err(AlpacaError::new(ErrorCode(code), message)),
        });
    }
    let tx_code = read_i32(buf, 6);
    let tx = ImageElementType::from_code(tx_code)
        .filter(|t| *t != ImageElementType::Unknown)
        .ok_or(ImageError::UnsupportedElementType(tx_code))?;
    let rank = read_i32(buf, 7);
    let mut dims = [0u32; 3];
    for (i, name) in ["Dimension1", "Dimension2", "Dimension3"]
        .into_iter()
        .enumerate()
    {
        let v = read_i32(buf, 8 + i);
        dims[i] = u32::try_from(v).map_err(|_| bad(name, v))?;
    }
    match rank {
        2 => dims[2] = 0,
        3 if dims[2] > 0 => {}
        _ => return Err(bad("Rank", rank)),
    }
    let count = element_count(dims);
    let expected = count
        .checked_mul(tx.size())
        .ok_or_else(|| bad("Dimension1", dims[0] as i32))?;
    if payload.len() != expected {
        return Err(ImageError::WrongPayloadLength {
            expected,
            actual: payload.len(),
        });
    }
    let data = widen(payload, tx)?;
    Ok(ImageBytesReply {
        client_transaction_id,
        server_transaction_id,
        image_element_type,
        result: Ok(ImageArray {
            dims,
            data,
            transmission_hint: narrow_hint(tx),
        }),
    })
}

fn narrow_hint(tx: ImageElementType) -> ImageElementType {
    match tx {
        ImageElementType::Byte | ImageElementType::Int16 | ImageElementType::UInt16 => tx,
        _ => ImageElementType::Int32,
    }
}

fn widen(payload: &[u8], tx: ImageElementType) -> Result<Vec<i32>, ImageError> {
    use ImageElementType::*;
    let size = tx.size();
    let range = |v: String| ImageError::ValueOutOfRange(v);
    let float = |f: f64| {
        if f.is_finite() && f >= i32::MIN as f64 && f <= i32::MAX as f64 {
            Ok(f.round() as i32)
        } else {
            Err(range(f.to_string()))
        }
    };
    payload
        .chunks_exact(size)
        .map(|c| match tx {
            Byte => Ok(i32::from(c[0])),
            Int16 => Ok(i32::from(i16::from_le_bytes([c[0], c[1]]))),
            UInt16 => Ok(i32::from(u16::from_le_bytes([c[0], c[1]]))),
            Int32 => Ok(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            UInt32 => {
                let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                i32::try_from(v).map_err(|_| range(v.to_string()))
            }
            Single => float(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            Double => float(f64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ])),
            Int64 => {
                let v = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                i32::try_from(v).map_err(|_| range(v.to_string()))
            }
            UInt64 => {
                let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                i32::try_from(v).map_err(|_| range(v.to_string()))
            }
            Unknown => Err(ImageError::UnsupportedElementType(0)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_is_44_little_endian_bytes_in_protocol_order() {
        let img = ImageArray::from_fn_2d(3, 2, |x, y| (x * 10 + y) as i32);
        let bytes = encode_image_bytes(&img, 7, 9);
        let field = |i: usize| {
            i32::from_le_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ])
        };
        assert_eq!(
            (0..11).map(field).collect::<Vec<_>>(),
            vec![1, 0, 7, 9, 44, 2, 2, 2, 3, 2, 0],
            "version, error, ctid, stid, datastart, image type, transmission type, rank, dims"
        );
        // Int32 payload, x outermost then y: (0,0),(0,1),(1,0),(1,1),(2,0),(2,1).
        let payload: Vec<i32> = bytes[44..]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(payload, vec![0, 1, 10, 11, 20, 21]);
    }

    #[test]
    fn hint_narrows_only_when_every_value_fits() {
        let small = ImageArray::from_fn_2d(2, 2, |x, y| (x + y) as i32)
            .with_transmission_hint(ImageElementType::UInt16);
        assert_eq!(small.transmission_type(), ImageElementType::UInt16);
        let bytes = encode_image_bytes(&small, 1, 1);
        assert_eq!(bytes.len(), 44 + 4 * 2);
        let negative = ImageArray::from_fn_2d(2, 2, |_, _| -1)
            .with_transmission_hint(ImageElementType::UInt16);
        assert_eq!(negative.transmission_type(), ImageElementType::Int32);
    }

    #[test]
    fn error_reply_carries_number_and_message() {
        let err = AlpacaError::invalid_operation("no image yet");
        let bytes = encode_image_bytes_error(&err, 3, 4);
        let reply = decode_image_bytes(&bytes).expect("valid error reply");
        assert_eq!(reply.client_transaction_id, 3);
        assert_eq!(reply.result, Err(err));
    }

    #[test]
    fn truncated_or_inconsistent_bodies_are_rejected() {
        let img = ImageArray::from_fn_2d(4, 4, |x, _| x as i32);
        let bytes = encode_image_bytes(&img, 1, 1);
        assert_eq!(
            decode_image_bytes(&bytes[..20]),
            Err(ImageError::ShortHeader(20))
        );
        assert!(matches!(
            decode_image_bytes(&bytes[..bytes.len() - 1]),
            Err(ImageError::WrongPayloadLength { .. })
        ));
        let mut bad_version = bytes.clone();
        bad_version[0] = 2;
        assert_eq!(
            decode_image_bytes(&bad_version),
            Err(ImageError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn json_form_is_x_major_and_round_trips() {
        let img = ImageArray::new_3d(2, 1, 3, vec![1, 2, 3, 4, 5, 6]).expect("consistent dims");
        let json = serde_json::to_value(img.json_value()).expect("serialisable");
        assert_eq!(json, serde_json::json!([[[1, 2, 3]], [[4, 5, 6]]]));
        assert_eq!(ImageArray::from_json_value(&json, Some(3)), Ok(img));
        let flat = serde_json::json!([[1.4, 2.6], [3.0, 4.0]]);
        let back = ImageArray::from_json_value(&flat, None).expect("rank 2 inferred");
        assert_eq!(back.data(), &[1, 3, 3, 4]);
        assert_eq!(back.get(0, 1, 0), Some(3));
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert_eq!(
            ImageArray::new_2d(2, 2, vec![1, 2, 3]),
            Err(ImageError::WrongLength {
                expected: 4,
                actual: 3
            })
        );
    }

    fn any_image() -> impl Strategy<Value = ImageArray> {
        (
            1u32..6,
            1u32..6,
            prop_oneof![Just(0u32), 1u32..4],
            prop_oneof![
                Just(ImageElementType::Int32),
                Just(ImageElementType::UInt16),
                Just(ImageElementType::Int16),
                Just(ImageElementType::Byte)
            ],
            prop_oneof![Just(255i32), Just(65_535), Just(i32::MAX)],
        )
            .prop_flat_map(|(w, h, p, hint, max)| {
                let n = (w * h * p.max(1)) as usize;
                (
                    Just((w, h, p, hint)),
                    proptest::collection::vec(-max..=max, n),
                )
            })
            .prop_map(|((w, h, p, hint), data)| {
                let img = if p == 0 {
                    ImageArray::new_2d(w, h, data)
                } else {
                    ImageArray::new_3d(w, h, p, data)
                };
                img.expect("generated with matching length")
                    .with_transmission_hint(hint)
            })
    }

    proptest! {
        #[test]
        fn image_bytes_round_trip(img in any_image(), ctid in any::<u32>(), stid in 1u32..) {
            let bytes = encode_image_bytes(&img, ctid, stid);
            let reply = decode_image_bytes(&bytes).expect("our own encoding decodes");
            prop_assert_eq!(reply.client_transaction_id, ctid);
            prop_assert_eq!(reply.server_transaction_id, stid);
            let back = reply.result.expect("success reply");
            prop_assert_eq!(back.data(), img.data());
            prop_assert_eq!(back.rank(), img.rank());
            prop_assert_eq!((back.width(), back.height(), back.planes()), (img.width(), img.height(), img.planes()));
        }

        #[test]
        fn json_round_trip(img in any_image()) {
            let json = serde_json::to_value(img.json_value()).expect("serialisable");
            let back = ImageArray::from_json_value(&json, Some(img.rank())).expect("decodes");
            prop_assert_eq!(back.data(), img.data());
        }

        #[test]
        fn decoder_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = decode_image_bytes(&bytes);
        }
    }
}
