use candle_core::Device;

use crate::error::{ModelError, Result};

/// Where the model runs. CUDA and Metal exist only when compiled in with the
/// `cuda` / `metal` cargo features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda(usize),
    Metal,
}

impl std::str::FromStr for DeviceKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            "metal" => Ok(Self::Metal),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(ordinal)) => Ok(Self::Cuda(ordinal)),
                _ => Err(ModelError::UnknownDevice(other.to_string())),
            },
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(0) => f.write_str("cuda"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => f.write_str("metal"),
        }
    }
}

impl DeviceKind {
    /// Opens the candle device, or says clearly that it was not compiled in.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => {
                if cfg!(feature = "cuda") {
                    Ok(Device::new_cuda(ordinal)?)
                } else {
                    Err(ModelError::DeviceNotCompiled("cuda".into()))
                }
            }
            Self::Metal => {
                if cfg!(feature = "metal") {
                    Ok(Device::new_metal(0)?)
                } else {
                    Err(ModelError::DeviceNotCompiled("metal".into()))
                }
            }
        }
    }
}
