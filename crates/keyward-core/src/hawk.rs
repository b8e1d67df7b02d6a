//! Hawk 1.x request authentication, as pure functions over inputs and `now`.
