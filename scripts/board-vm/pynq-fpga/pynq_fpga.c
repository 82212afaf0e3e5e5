// SPDX-License-Identifier: GPL-2.0
/*
 * pynq_fpga: an FPGA manager for the emulated board (scripts/board-vm), where the
 * kernel has no FPGA framework and QEMU has no programmable logic.
 *
 * It presents the sysfs interface that PYNQ and pynq-agent program bitstreams through
 * on Xilinx kernels, /sys/class/fpga_manager/fpga0/{name,state,flags,firmware}: write
 * the flags (0 full, 1 partial), then a file name relative to /lib/firmware to
 * "firmware"; the write returns when the load is over, and "state" says how it ended,
 * in the kernel's words ("operating", "firmware request error", "write init error",
 * ...). A full bitstream must be a .bin (byte-swapped sync word near its start), as the
 * Zynq driver requires.
 *
 * For tests it also reports what the last good load received (load_size, load_crc32:
 * the IEEE CRC-32 of the file, as Go's hash/crc32 and zlib compute it; load_count) and
 * takes two parameters, writable at run time under /sys/module/pynq_fpga/parameters:
 *   fail=init|write|complete   the next loads fail at that step (EINVAL, EIO, EIO)
 *   delay_ms=N                 the write step takes N ms longer
 *
 * The load is the function fpga_mgr_firmware_load, the name of the Xilinx kernels'
 * sysfs load path, so that kprobes on it (pynq-agent's telemetry) see every load.
 */
#include <linux/module.h>
#include <linux/device.h>
#include <linux/kdev_t.h>
#include <linux/firmware.h>
#include <linux/crc32.h>
#include <linux/delay.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>

static char *fail = "";
module_param(fail, charp, 0644);
MODULE_PARM_DESC(fail, "make loads fail: init, write or complete (empty: loads succeed)");

static unsigned int delay_ms;
module_param(delay_ms, uint, 0644);
MODULE_PARM_DESC(delay_ms, "extra time each load's write step takes, in ms");

/* How far the Zynq driver looks for the sync word of a full bitstream. */
#define SYNC_SEARCH 4096

struct pynq_mgr {
	struct mutex lock; /* one load at a time */
	const char *state; /* the kernel's state words */
	u32 flags;
	char firmware[NAME_MAX + 1];
	size_t load_size;
	u32 load_crc32;
	unsigned int load_count;
};

static struct pynq_mgr mgr = { .state = "unknown" };
static struct class *mgr_class;
static struct device *mgr_dev;

static bool fails_at(const char *step)
{
	return sysfs_streq(fail, step);
}

/* has_sync reports whether a .bin's byte-swapped sync word (AA995566) is near its start. */
static bool has_sync(const u8 *buf, size_t len)
{
	static const u8 sync[] = { 0x66, 0x55, 0x99, 0xaa };
	size_t i, n = min_t(size_t, len, SYNC_SEARCH);

	for (i = 0; i + sizeof(sync) <= n; i += 4)
		if (!memcmp(buf + i, sync, sizeof(sync)))
			return true;
	return false;
}

/* fpga_mgr_firmware_load loads /lib/firmware/<name>; called with mgr.lock held. */
noinline int fpga_mgr_firmware_load(struct device *dev, const char *name)
{
	const struct firmware *fw;
	int err;

	mgr.state = "firmware request";
	err = request_firmware(&fw, name, dev);
	if (err) {
		dev_err(dev, "request_firmware %s: %d\n", name, err);
		mgr.state = "firmware request error";
		return err;
	}
	mgr.state = "write init";
	if (fails_at("init") || (!(mgr.flags & 1) && !has_sync(fw->data, fw->size))) {
		dev_err(dev, "%s: no sync word in a full bitstream (a .bit, not a .bin?)\n", name);
		mgr.state = "write init error";
		err = -EINVAL;
		goto out;
	}
	mgr.state = "write";
	if (delay_ms)
		msleep(delay_ms);
	if (fails_at("write")) {
		dev_err(dev, "%s: write failed (fail=write)\n", name);
		mgr.state = "write error";
		err = -EIO;
		goto out;
	}
	mgr.state = "write complete";
	if (fails_at("complete")) {
		dev_err(dev, "%s: no DONE after the write (fail=complete)\n", name);
		mgr.state = "write complete error";
		err = -EIO;
		goto out;
	}
	mgr.load_size = fw->size;
	mgr.load_crc32 = crc32_le(~0U, fw->data, fw->size) ^ ~0U;
	mgr.load_count++;
	mgr.state = "operating";
	dev_info(dev, "loaded %s: %zu bytes, crc32 %08x\n", name, fw->size, mgr.load_crc32);
out:
	release_firmware(fw);
	return err;
}

static ssize_t name_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "pynq_fpga emulated FPGA manager\n");
}
static DEVICE_ATTR_RO(name);

static ssize_t state_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", READ_ONCE(mgr.state));
}
static DEVICE_ATTR_RO(state);

static ssize_t flags_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%x\n", mgr.flags);
}

static ssize_t flags_store(struct device *dev, struct device_attribute *attr, const char *buf, size_t count)
{
	u32 v;
	int err = kstrtou32(buf, 0, &v);

	if (err)
		return err;
	mutex_lock(&mgr.lock);
	mgr.flags = v;
	mutex_unlock(&mgr.lock);
	return count;
}
static DEVICE_ATTR_RW(flags);

static ssize_t firmware_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	ssize_t n;

	mutex_lock(&mgr.lock);
	n = sysfs_emit(buf, "%s\n", mgr.firmware);
	mutex_unlock(&mgr.lock);
	return n;
}

static ssize_t firmware_store(struct device *dev, struct device_attribute *attr, const char *buf, size_t count)
{
	size_t len = strcspn(buf, "\n");
	int err;

	if (len == 0 || len > NAME_MAX)
		return -EINVAL;
	if (mutex_lock_interruptible(&mgr.lock))
		return -ERESTARTSYS;
	memcpy(mgr.firmware, buf, len);
	mgr.firmware[len] = 0;
	err = fpga_mgr_firmware_load(dev, mgr.firmware);
	mutex_unlock(&mgr.lock);
	return err ? err : count;
}
static DEVICE_ATTR_RW(firmware);

static ssize_t load_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%zu\n", mgr.load_size);
}
static DEVICE_ATTR_RO(load_size);

static ssize_t load_crc32_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%08x\n", mgr.load_crc32);
}
static DEVICE_ATTR_RO(load_crc32);

static ssize_t load_count_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", mgr.load_count);
}
static DEVICE_ATTR_RO(load_count);

static struct attribute *mgr_attrs[] = {
	&dev_attr_name.attr,
	&dev_attr_state.attr,
	&dev_attr_flags.attr,
	&dev_attr_firmware.attr,
	&dev_attr_load_size.attr,
	&dev_attr_load_crc32.attr,
	&dev_attr_load_count.attr,
	NULL,
};
ATTRIBUTE_GROUPS(mgr);

static int __init pynq_fpga_init(void)
{
	mutex_init(&mgr.lock);
	mgr_class = class_create(THIS_MODULE, "fpga_manager");
	if (IS_ERR(mgr_class))
		return PTR_ERR(mgr_class);
	mgr_dev = device_create_with_groups(mgr_class, NULL, MKDEV(0, 0), NULL, mgr_groups, "fpga0");
	if (IS_ERR(mgr_dev)) {
		class_destroy(mgr_class);
		return PTR_ERR(mgr_dev);
	}
	return 0;
}

static void __exit pynq_fpga_exit(void)
{
	device_unregister(mgr_dev);
	class_destroy(mgr_class);
}

module_init(pynq_fpga_init);
module_exit(pynq_fpga_exit);
MODULE_DESCRIPTION("Emulated FPGA manager with the Xilinx sysfs interface, for the pynq-agent board VM");
MODULE_LICENSE("GPL");
