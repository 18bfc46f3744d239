//! The VST3 entry point of the built plugin library loads and lists the plugin (a `dlopen` +
//! `GetPluginFactory` check, calling the factory through its COM vtable).
#![cfg(all(feature = "plugin", target_os = "linux"))]

use std::ffi::{c_void, CString};

#[path = "common/plugin_library.rs"]
mod plugin_library;

/// VST3's `PClassInfo`.
#[repr(C)]
struct ClassInfo {
    cid: [u8; 16],
    cardinality: i32,
    category: [u8; 32],
    name: [u8; 64],
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[test]
fn vst3_factory_lists_improvnet() {
    let path = CString::new(
        plugin_library::plugin_library("IMPROVNET_TEST_VST3")
            .to_string_lossy()
            .as_bytes(),
    )
    .unwrap();
    unsafe {
        let lib = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!lib.is_null(), "dlopen failed");
        let sym = |name: &str| {
            let n = CString::new(name).unwrap();
            libc::dlsym(lib, n.as_ptr())
        };
        let entry = sym("ModuleEntry");
        assert!(!entry.is_null(), "no ModuleEntry");
        let entry: extern "system" fn(*mut c_void) -> bool = std::mem::transmute(entry);
        assert!(entry(lib));
        let get = sym("GetPluginFactory");
        assert!(!get.is_null(), "no GetPluginFactory");
        let get: extern "system" fn() -> *mut *const usize = std::mem::transmute(get);
        let factory = get();
        assert!(!factory.is_null(), "GetPluginFactory returned null");
        // IPluginFactory: queryInterface, addRef, release, getFactoryInfo, countClasses,
        // getClassInfo, createInstance.
        let vtable = *factory;
        let count: extern "system" fn(*mut c_void) -> i32 = std::mem::transmute(*vtable.add(4));
        assert_eq!(count(factory.cast()), 1);
        let class_info: extern "system" fn(*mut c_void, i32, *mut ClassInfo) -> i32 =
            std::mem::transmute(*vtable.add(5));
        let mut info = ClassInfo {
            cid: [0; 16],
            cardinality: 0,
            category: [0; 32],
            name: [0; 64],
        };
        assert_eq!(
            class_info(factory.cast(), 0, &mut info),
            0,
            "getClassInfo failed"
        );
        assert_eq!(c_str(&info.name), "ImprovNet");
        assert_eq!(c_str(&info.category), "Audio Module Class");
        let release: extern "system" fn(*mut c_void) -> u32 = std::mem::transmute(*vtable.add(2));
        release(factory.cast());
        let exit = sym("ModuleExit");
        if !exit.is_null() {
            let exit: extern "system" fn() -> bool = std::mem::transmute(exit);
            exit();
        }
    }
}
