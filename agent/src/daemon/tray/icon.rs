//! The tray's icon, drawn in code: a clock face (time-limited access) on a blue disc.
//! Drawing it keeps image files and an image decoder out of the binary.

/// The icon's width and height in pixels.
pub const SIZE: u32 = 32;

/// The icon as RGBA bytes, row by row (`SIZE * SIZE * 4` bytes).
pub fn rgba() -> Vec<u8> {
    let centre = (SIZE as f32 - 1.0) / 2.0;
    let radius = SIZE as f32 / 2.0 - 1.0;
    let mut pixels = Vec::with_capacity((SIZE * SIZE * 4) as usize);
    for row in 0..SIZE {
        for column in 0..SIZE {
            let dx = column as f32 - centre;
            let dy = row as f32 - centre;
            let distance = (dx * dx + dy * dy).sqrt();
            // Hour hand up to twelve, minute hand towards three.
            let hour_hand = dx.abs() <= 1.5 && dy <= 0.5 && dy >= -radius * 0.6;
            let minute_hand = dy.abs() <= 1.5 && dx >= -0.5 && dx <= radius * 0.7;
            let rim = distance > radius - 2.5;
            let pixel = if distance > radius {
                [0, 0, 0, 0]
            } else if rim || hour_hand || minute_hand {
                [255, 255, 255, 255]
            } else {
                [31, 111, 235, 255]
            };
            pixels.extend_from_slice(&pixel);
        }
    }
    pixels
}

/// The icon as ARGB32 in network byte order (what StatusNotifierItem carries).
#[cfg(all(unix, not(target_os = "macos")))]
pub fn argb() -> Vec<u8> {
    let mut pixels = rgba();
    for pixel in pixels.chunks_exact_mut(4) {
        pixel.rotate_right(1);
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_icon_is_a_disc_with_transparent_corners() {
        let pixels = rgba();
        assert_eq!(pixels.len(), (SIZE * SIZE * 4) as usize);
        // Top-left corner: transparent. Centre: a white hand.
        assert_eq!(&pixels[0..4], &[0, 0, 0, 0]);
        let centre = ((SIZE / 2) * SIZE + SIZE / 2) as usize * 4;
        assert_eq!(&pixels[centre..centre + 4], &[255, 255, 255, 255]);
        // Lower left of the face: blue.
        let face = ((SIZE * 3 / 4) * SIZE + SIZE / 3) as usize * 4;
        assert_eq!(&pixels[face..face + 4], &[31, 111, 235, 255]);
    }
}
