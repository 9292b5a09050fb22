//! `render`: writes the `/x1` overlay of a preset plus its runtime config (opencode.json) from preset
//! defaults and values, refusing values that would break the contract.
