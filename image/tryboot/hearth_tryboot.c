// SPDX-License-Identifier: GPL-2.0-only
/*
 * hearth_tryboot: hand the "tryboot" of a reboot command on to the Raspberry Pi firmware.
 *
 * The firmware boots the [tryboot] section of autoboot.txt once when its one-shot reboot
 * flag is set; any later reset, and any crash, boots the committed partition again. That
 * flag lives behind the firmware's mailbox (property tag SET_REBOOT_FLAGS), which user
 * space cannot reach on a mainline kernel. The Raspberry Pi kernel sets it from a reboot
 * notifier in its firmware driver; Debian's kernel, which Hearth's Pi images run, has no
 * such notifier. This module is that notifier, built on what mainline exports:
 * rpi_firmware_get() and rpi_firmware_property().
 *
 * Usage is the Raspberry Pi kernel's: `systemctl reboot "0 tryboot"` (any reboot argument
 * containing " tryboot"). The Hearth agent refuses to stage an update on a Pi unless the
 * kernel lists hearth_tryboot_notify (or the Raspberry Pi kernel's own hook) in kallsyms.
 */
#include <linux/bits.h>
#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/of.h>
#include <linux/reboot.h>
#include <linux/string.h>
#include <soc/bcm2835/raspberrypi-firmware.h>

/* Property tags of the firmware's mailbox interface. */
#define HEARTH_FW_SET_REBOOT_FLAGS 0x00038064
#define HEARTH_REBOOT_FLAG_TRYBOOT BIT(0)

static struct device_node *hearth_fw_node;

static int hearth_tryboot_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	const char *cmd = data;
	struct rpi_firmware *fw;
	u32 flags = HEARTH_REBOOT_FLAG_TRYBOOT;
	int ret;

	if (action != SYS_RESTART || !cmd || !strstr(cmd, " tryboot"))
		return NOTIFY_DONE;

	fw = rpi_firmware_get(hearth_fw_node);
	if (!fw) {
		pr_err("hearth_tryboot: the firmware driver is gone; the committed slot boots again\n");
		return NOTIFY_DONE;
	}
	ret = rpi_firmware_property(fw, HEARTH_FW_SET_REBOOT_FLAGS, &flags, sizeof(flags));
	rpi_firmware_put(fw);
	if (ret)
		pr_err("hearth_tryboot: the firmware refused the tryboot flag (%d); the committed slot boots again\n",
		       ret);
	else
		pr_info("hearth_tryboot: the next boot is a tryboot\n");
	return NOTIFY_DONE;
}

static struct notifier_block hearth_tryboot_nb = {
	.notifier_call = hearth_tryboot_notify,
};

static int __init hearth_tryboot_init(void)
{
	struct rpi_firmware *fw;
	int ret;

	hearth_fw_node = of_find_compatible_node(NULL, NULL, "raspberrypi,bcm2835-firmware");
	if (!hearth_fw_node) {
		pr_err("hearth_tryboot: no Raspberry Pi firmware node in the device tree\n");
		return -ENODEV;
	}
	/* Refuse to load, rather than fail at reboot, if the firmware is not reachable. */
	fw = rpi_firmware_get(hearth_fw_node);
	if (!fw) {
		pr_err("hearth_tryboot: the Raspberry Pi firmware driver has not started\n");
		of_node_put(hearth_fw_node);
		return -ENODEV;
	}
	rpi_firmware_put(fw);

	ret = register_reboot_notifier(&hearth_tryboot_nb);
	if (ret)
		of_node_put(hearth_fw_node);
	return ret;
}

static void __exit hearth_tryboot_exit(void)
{
	unregister_reboot_notifier(&hearth_tryboot_nb);
	of_node_put(hearth_fw_node);
}

module_init(hearth_tryboot_init);
module_exit(hearth_tryboot_exit);
MODULE_DESCRIPTION("Pass a reboot's \"tryboot\" on to the Raspberry Pi firmware");
MODULE_LICENSE("GPL");
