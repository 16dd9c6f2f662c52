[CmdletBinding()]
param(
    [switch]$Remove,
    [switch]$EnableEws
)

$ErrorActionPreference = 'Stop'
$AppId = [guid]@APP_ID@

function Split-AppIdList {
    # EwsAllowedAppIDs reads back as one comma-separated string, or as a collection of such strings: both are
    # accepted. Entries are trimmed, blank ones dropped; one that is not a GUID stops the script before it writes.
    param($Value)
    foreach ($item in @($Value)) {
        foreach ($part in ([string]$item -split ',')) {
            $text = $part.Trim()
            if ($text -eq '') { continue }
            $id = [guid]::Empty
            if (-not [guid]::TryParse($text, [ref]$id)) {
                throw "EwsAllowedAppIDs holds '$text', which is not an application id (GUID). Correct the list by hand first; nothing was changed."
            }
            $text
        }
    }
}

function Select-UniqueAppId {
    # The same GUID twice (in any letter case) is kept once, in its first spelling.
    param([string[]]$Ids)
    $seen = [System.Collections.Generic.HashSet[guid]]::new()
    foreach ($text in $Ids) {
        if ($seen.Add([guid]$text)) { $text }
    }
}

function Test-IsThisApp {
    # GUIDs compare case-insensitively: 'ABC...' and 'abc...' are the same application.
    param([string]$Text)
    ([guid]$Text) -eq $AppId
}

function Read-EwsPolicy {
    try {
        $config = Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy
    } catch {
        throw ('Cannot read the EWS policy (Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy): {0} Connect with Connect-ExchangeOnline as an Exchange Administrator first. Nothing was changed.' -f $_.Exception.Message)
    }
    if ($null -eq $config -or $null -eq $config.PSObject.Properties['EwsAllowedAppIDs']) {
        throw 'Get-OrganizationConfig returned no EwsAllowedAppIDs: update the ExchangeOnlineManagement module and connect again. Nothing was changed.'
    }
    $config
}

function Show-EwsPolicy {
    param([string]$When, $Enabled, [string[]]$Ids)
    $state = if ($null -eq $Enabled) { '(not set)' } else { [string]$Enabled }
    $list = if ($Ids.Count -gt 0) { $Ids -join ',' } else { '(empty)' }
    Write-Host ('EWS allow list {0}: EwsEnabled {1}; EwsAllowedAppIDs {2}' -f $When, $state, $list)
}

# 1. Read.
$config = Read-EwsPolicy
$stored = @(Split-AppIdList $config.EwsAllowedAppIDs)
Show-EwsPolicy 'before' $config.EwsEnabled $stored

# 2. Merge: the other ids stay as they are; only this app's id is added (once) or dropped.
$before = @(Select-UniqueAppId $stored)
$others = @($before | Where-Object { -not (Test-IsThisApp $_) })
$present = $others.Count -lt $before.Count
if ($Remove) {
    $after = $others
} elseif ($present) {
    $after = $before
} else {
    $after = @($before) + $AppId.ToString()
}
$enabled = $config.EwsEnabled -eq $true
$enable = (-not $Remove) -and ($enabled -or $EnableEws)
$listChanged = ($after -join ',') -cne ($stored -join ',')
$changed = $listChanged -or ($enable -and -not $enabled)

if ($Remove -and $listChanged -and $after.Count -eq 0) {
    Write-Warning ('This app is the only one on the EWS allow list, and this script does not write an empty list. ' +
        'With EwsEnabled $true only the applications on the list may use EWS, while a $null list means no ' +
        'restriction by application at all; which of the two an empty list would mean is not documented, and either ' +
        'is a decision for the whole tenant, not for this portal. Choose one: if no application of this tenant needs ' +
        'EWS any more, run Set-OrganizationConfig -EwsEnabled $false; if other applications still need it, put them ' +
        'on the list first and run this script again; or leave the list as it is (this app gets no tokens once it ' +
        'is deleted in Entra ID). Nothing was changed.')
    exit 1
}

# 3. Write the whole list back, only when something changed.
if ($changed) {
    $joined = $after -join ','
    try {
        if ($enable) {
            Set-OrganizationConfig -EwsAllowedAppIDs $joined -EwsEnabled $true
        } else {
            Set-OrganizationConfig -EwsAllowedAppIDs $joined
        }
    } catch {
        throw ('Set-OrganizationConfig failed: {0} The list to write was: {1}' -f $_.Exception.Message, $joined)
    }
    $config = Read-EwsPolicy
    Show-EwsPolicy 'after' $config.EwsEnabled @(Split-AppIdList $config.EwsAllowedAppIDs)
    Write-Host 'Exchange Online can take up to 24 hours to apply a changed EwsAllowedAppIDs.'
} else {
    Write-Host 'Nothing to change.'
}

if (-not $Remove -and -not $enable) {
    $state = if ($null -eq $config.EwsEnabled) { '(not set)' } else { [string]$config.EwsEnabled }
    Write-Warning (('EwsEnabled is {0}: Exchange Online lets this app use EWS only with EwsEnabled $true, and $true ' +
        'restricts EWS for the whole tenant to the applications on this list. Make sure every application the tenant ' +
        'still needs EWS for is on it (the EWS usage report lists them), then run this script again with ' +
        '-EnableEws.') -f $state)
}
