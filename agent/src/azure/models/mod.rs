//! Request and response bodies of the ARM APIs `jit` calls, with their REST names.
//!
//! Built from the OpenAPI specs in `../shared/azure-rest/` (JIT 2020-01-01, Compute
//! 2024-07-01, Network 2024-05-01, Subscriptions 2022-12-01, Resource Graph 2024-04-01,
//! Security locations 2015-06-01-preview), and from Azure/azure-rest-api-specs for
//! Authorization permissions (2022-04-01) and Defender pricings (2024-01-01). Only the fields `jit` reads or writes are
//! modelled; everything else is ignored when reading. Because a JIT policy is written
//! back with PUT (which replaces the whole document), the JIT models also keep unknown
//! fields (`additional_properties`) so a read-modify-write never drops what Azure sent.
//!
//! Enums the specs mark `modelAsString` parse any string: unknown values land in an
//! `Other(String)` arm and are written back unchanged (the JIT port status `Initiating`
//! is in no enum, yet Azure sends it). Durations stay ISO-8601 strings
//! ([`IsoDuration`]) with a parser; times are [`jiff::Timestamp`].

/// Declares a string-valued enum that keeps unknown values.
///
/// Known values parse case-insensitively and serialise in their canonical spelling;
/// anything else is kept verbatim in `Other`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
            /// A value this version of `jit` does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(value) => value.as_str(),
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $( if value.eq_ignore_ascii_case($wire) { return $name::$variant; } )+
                $name::Other(value.to_owned())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok($name::from(value.as_ref()))
            }
        }
    };
}

mod authorization;
mod common;
mod compute;
mod jit;
mod network;
mod resource_graph;
mod security;
mod subscription;

pub use authorization::*;
pub use common::*;
pub use compute::*;
pub use jit::*;
pub use network::*;
pub use resource_graph::*;
pub use security::*;
pub use subscription::*;
