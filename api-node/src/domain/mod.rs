//! Request input parsed into types that cannot hold an invalid value
//! (parse, don't validate). Every parser reports every invalid field at once.

pub mod fields;
pub mod list_query;
#[cfg(test)]
mod strategies;
pub mod task_input;
pub mod user_input;
