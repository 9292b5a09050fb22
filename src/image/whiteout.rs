//! Whiteout marker classification (pure functions): `.wh.<name>`, `.wh..wh..opq`, invalid `.wh.`.
