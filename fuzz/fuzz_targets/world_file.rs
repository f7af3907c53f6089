//! The emulator's world file (TOML or JSON), through `World::from_toml` and
//! `serde_json` + `World::validate`, as `jit demo` and `jit-emulator --world` load it.
//!
//! Checked beyond "no panic": a world that validates can be written back in both formats
//! and reads back equal.

#![no_main]

use jit_emulator::World;
use libfuzzer_sys::fuzz_target;

fn check(world: &World) {
    let toml_text = toml::to_string(world).expect("a valid world writes as TOML");
    let from_toml = World::from_toml(&toml_text).expect("and reads back");
    assert_eq!(&from_toml, world);
    let json_text = serde_json::to_string(world).expect("a valid world writes as JSON");
    let from_json: World = serde_json::from_str(&json_text).expect("and reads back");
    assert_eq!(&from_json, world);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(world) = World::from_toml(text) {
        check(&world);
    }
    if let Ok(world) = serde_json::from_str::<World>(text)
        && world.validate().is_ok()
    {
        check(&world);
    }
});
