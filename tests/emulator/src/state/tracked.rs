//! The resources with a generation number that moves on every change, so views derived
//! from them (Resource Graph's table) know when to rebuild.
//!
//! Every mutable access counts as a change: a derived view can be stale only if someone
//! changed the resources without a `&mut`, which Rust does not allow. Reads through
//! `Deref` leave the generation alone, so the code that only looks does not invalidate
//! anything.

use std::ops::{Deref, DerefMut};

use super::model::Resources;

/// [`Resources`] and their generation.
#[derive(Debug)]
pub(crate) struct Tracked {
    resources: Resources,
    generation: u64,
}

impl Tracked {
    pub(crate) fn new(resources: Resources) -> Self {
        Self {
            resources,
            generation: 0,
        }
    }

    /// Moves on every mutable access.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl Deref for Tracked {
    type Target = Resources;

    fn deref(&self) -> &Resources {
        &self.resources
    }
}

impl DerefMut for Tracked {
    fn deref_mut(&mut self) -> &mut Resources {
        self.generation = self.generation.wrapping_add(1);
        &mut self.resources
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_keep_the_generation_and_writes_move_it() {
        let world = crate::world::World::default_world();
        let resources = super::super::materialise::materialise(
            &world,
            &super::super::materialise::Bindings::default(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let Ok(resources) = resources else {
            panic!("the default world materialises");
        };
        let mut tracked = super::Tracked::new(resources);
        let before = tracked.generation();
        assert!(!tracked.virtual_machines.is_empty());
        // Reading through a mutable place is still a read.
        let place = &mut tracked;
        assert!(place.jit_policies.values().count() > 0);
        assert_eq!(tracked.generation(), before);
        tracked.security_home_region = "westus".to_owned();
        assert_ne!(tracked.generation(), before);
    }
}
